# shellcheck shell=bash
# Part of scripts/lib.sh: nginx for the test that runs a sale through deploy/nginx.conf
# (tests/suite/nginx.rs). The test starts and stops nginx itself, as this user, with a prefix
# under .data/nginx/; nothing here runs it, and it never runs as a system service.

# Debian 12's `nginx` package has the auth_request module built in (`nginx -V` lists
# --with-http_auth_request_module); nginx-light would only add an echo module we do not use.
_wr_nginx_ok() {
  "$1" -V 2>&1 | grep -q -- --with-http_auth_request_module
}

# The nginx binary: WAITROOM_NGINX, else PATH, else /usr/sbin (not on a non-root PATH).
_wr_nginx_bin() {
  local bin
  for bin in "${WAITROOM_NGINX:-}" "$(command -v nginx 2>/dev/null)" /usr/sbin/nginx; do
    [[ -n $bin && -x $bin ]] && _wr_nginx_ok "$bin" && { echo "$bin"; return 0; }
  done
  return 1
}

# Install nginx if missing and export WAITROOM_NGINX for the test. The package's postinst
# starts a system nginx on port 80 unless policy-rc.d forbids it: we forbid it for the
# install when the machine has no policy of its own (containers usually do).
wr_install_nginx() {
  local bin policy=/usr/sbin/policy-rc.d ours=0 rc=0
  if ! bin=$(_wr_nginx_bin); then
    if [[ ! -e $policy ]]; then
      _wr_as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy" || return 1
      ours=1
    fi
    _wr_apt_install nginx || rc=1
    if ((ours == 1)); then _wr_as_root rm -f "$policy" || rc=1; fi
    ((rc == 0)) || return 1
    if ! bin=$(_wr_nginx_bin); then
      wr_err "nginx installed but no binary with the auth_request module found"
      return 1
    fi
  fi
  WAITROOM_NGINX=$bin
  export WAITROOM_NGINX
}

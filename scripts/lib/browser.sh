# shellcheck shell=bash
# Part of scripts/lib.sh: Chromium and chromedriver for the browser tests (tests/suite/browser/).

# Installed without recommends (see _wr_apt_install). Headless Chromium needs none of them: its
# Depends already bring fontconfig and, through fontconfig-config, fonts-dejavu-core, which is
# enough to render the pages (and so the screenshots) readably. Checked on a minimal Debian 12.
wr_install_browser() {
  [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] && return 0
  _wr_apt_install chromium chromium-driver
}

// Entry point of the operator's dashboard (/admin): sign-in, the live stream, and the
// selected sale's numbers, charts, controls, report and audit trail.
//
// The admin token is sent once, to POST /api/admin/session, and never stored: the session is
// an HttpOnly cookie this script cannot read.

import { api } from './api.js';
import { $ } from './format.js';
import { connect, data } from './stream.js';
import * as charts from './charts.js';
import { renderList, renderSale } from './view.js';
import * as controls from './controls.js';
import { loadAudit, loadReport } from './panels.js';
import { loadWebhooks, startWebhooks, stopWebhooks } from './webhooks.js';

const ui = { es: null, selected: null, shown: null, keepalive: null };

function setState(state) {
  document.body.dataset.state = state;
  for (const n of document.querySelectorAll('[data-when]')) n.hidden = n.dataset.when !== state;
}

function setConn(c) {
  const labels = { live: 'Live', connecting: 'Connecting…', down: 'Disconnected' };
  $('#conn').dataset.conn = c;
  $('#conn').textContent = labels[c] || '';
}

function select(id) {
  ui.selected = id;
  history.replaceState(null, '', `#sale=${encodeURIComponent(id)}`);
  render();
}

function showSale(s) {
  for (const id of ['#sale', '#charts-card', '#controls', '#report-card', '#audit-card']) $(id).hidden = false;
  renderSale(s);
  const series = data.series.get(s.id);
  if (ui.shown !== s.id) {
    ui.shown = s.id;
    charts.show($('#charts'), series);
    controls.fill(s);
    loadReport(s.id);
    loadAudit(s.id);
  } else {
    charts.update(series);
  }
}

function render() {
  const sales = data.latest?.sales ?? [];
  if (!sales.some((s) => s.id === ui.selected)) ui.selected = (sales.find((s) => s.open) ?? sales[0])?.id ?? null;
  renderList(sales, ui.selected, select);
  const s = sales.find((x) => x.id === ui.selected);
  if (s) showSale(s);
}

async function stillSignedIn() {
  try { await api('/api/admin/session'); return true; } catch (err) { return err.status !== 401; }
}

function goLive() {
  setState('live');
  ui.es?.close();
  ui.es = connect({
    onChange: render,
    onState: async (c) => {
      setConn(c);
      if (c === 'live') return;
      if (!(await stillSignedIn())) signedOut('Your session ended: sign in again.');
      // The browser gave up (a 5xx, say) while the session holds: try again shortly.
      else if (c === 'down') setTimeout(() => ui.es?.readyState === EventSource.CLOSED && goLive(), 3000);
    },
  });
  // Keeps the session cookie fresh while the page is open (the server renews it).
  clearInterval(ui.keepalive);
  ui.keepalive = setInterval(stillSignedIn, 5 * 60 * 1000);
  startWebhooks();
}

function signedOut(message = '') {
  ui.es?.close();
  ui.es = null;
  clearInterval(ui.keepalive);
  stopWebhooks();
  charts.clear();
  ui.shown = null;
  setConn('');
  $('#signin-error').textContent = message;
  setState('signin');
}

async function signIn(e) {
  e.preventDefault();
  const input = $('#token');
  $('#signin-error').textContent = '';
  try {
    await api('/api/admin/session', { method: 'POST', body: { token: input.value } });
    input.value = '';
    goLive();
  } catch (err) {
    $('#signin-error').textContent = err.status === 401 ? 'That is not the admin token.' : err.message;
  }
}

async function signOut() {
  try { await api('/api/admin/session', { method: 'DELETE' }); } finally { signedOut(); }
}

async function boot() {
  const m = location.hash.match(/^#sale=(.+)$/);
  if (m) ui.selected = decodeURIComponent(m[1]);
  $('#signin-form').addEventListener('submit', signIn);
  $('#signout').addEventListener('click', signOut);
  $('#report-refresh').addEventListener('click', () => ui.selected && loadReport(ui.selected));
  $('#audit-refresh').addEventListener('click', () => ui.selected && loadAudit(ui.selected));
  $('#webhooks-refresh').addEventListener('click', loadWebhooks);
  $('#audit-more').addEventListener('click', () => ui.selected && loadAudit(ui.selected, { more: true }));
  controls.bind(() => ui.selected, () => ui.selected && loadAudit(ui.selected));
  if (await stillSignedIn()) goLive(); else signedOut();
}

boot();

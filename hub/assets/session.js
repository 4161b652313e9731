// The signed-in session as the hub sees it (GET /hub/api/me), the elevation toggle and
// its countdown. The hub's clock is the only clock that matters: the countdown runs
// from the hub's `seconds_left`, and the session is re-read every few seconds and when
// the countdown ends, so an elevation that lapses turns the page read-only without a
// reload (and so does one the hub ends early).

import { api, setCsrf, ApiError } from './api.js';
import { clock, announce } from './dom.js';

const POLL_MS = 5000;

let me = null;
let endsAt = null;          // performance.now() at which the elevation ends (local estimate)
let pollTimer = null;
let tickTimer = null;
let refreshing = null;
const listeners = new Set();

export function current() { return me; }

/** f(me, prev) after every change of user, session id (csrf) or class. */
export function onChange(f) {
  listeners.add(f);
  return () => listeners.delete(f);
}

function changed(a, b) {
  if (!a || !b) return a !== b;
  return a.user !== b.user || a.csrf !== b.csrf || a.class !== b.class;
}

function apply(next) {
  const prev = me;
  me = next;
  setCsrf(me ? me.csrf : null);
  if (me && me.class !== 'read' && typeof me.seconds_left === 'number') {
    endsAt = performance.now() + me.seconds_left * 1000;
  } else {
    endsAt = null;
  }
  document.body.dataset.sessionClass = me ? me.class : 'none';
  render();
  if (changed(prev, me)) {
    if (prev && me && prev.class !== me.class && me.class === 'read' && prev.user === me.user) {
      announce('Your raised privileges have ended; you are read-only now.');
    }
    for (const f of listeners) {
      try { f(me, prev); } catch (e) { console.error(e); }
    }
  }
  schedule();
}

/** Re-reads the session; null when not signed in. Concurrent calls share one request. */
export function refresh() {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try {
      const m = await api.get('/hub/api/me', { allow401: true });
      apply(m);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        const had = me;
        apply(null);
        if (had) window.dispatchEvent(new CustomEvent('steward:unauthenticated', { detail: 'Your session has ended. Please sign in again.' }));
      } else {
        // The hub is unreachable: keep what we know, say so, try again at the next poll.
        banner(`Cannot check your session: ${e.message}`);
        throw e;
      }
    } finally {
      refreshing = null;
    }
    return me;
  })();
  return refreshing;
}

function schedule() {
  clearInterval(pollTimer);
  clearInterval(tickTimer);
  pollTimer = tickTimer = null;
  if (!me) return;
  pollTimer = setInterval(() => { refresh().catch(() => {}); }, POLL_MS);
  if (endsAt !== null) tickTimer = setInterval(tick, 1000);
}

function tick() {
  if (endsAt === null) return;
  const left = (endsAt - performance.now()) / 1000;
  const cd = document.getElementById('countdown');
  if (left <= 0) {
    cd.textContent = `${me.class}: ending…`;
    clearInterval(tickTimer);
    tickTimer = null;
    // Ask the hub; it decides when the elevation is over.
    refresh().catch(() => {});
    return;
  }
  cd.textContent = `${me.class} for ${clock(left)}`;
  cd.setAttribute('aria-label', `${me.class} privileges, ${Math.ceil(left / 60)} minutes left`);
}

export function banner(text) {
  const b = document.getElementById('banner');
  if (!b) return;
  if (!text) {
    b.hidden = true;
    b.textContent = '';
    return;
  }
  b.textContent = text;
  b.hidden = false;
}

function render() {
  const top = document.getElementById('top');
  top.hidden = !me;
  if (!me) return;
  banner(null);
  const who = document.getElementById('who-user');
  who.textContent = me.user + (me.admin ? ' (admin)' : '');
  who.title = me.groups && me.groups.length ? `groups: ${me.groups.join(', ')}` : '';
  for (const b of document.querySelectorAll('.elevation .toggle')) {
    b.setAttribute('aria-pressed', String(b.dataset.class === me.class));
  }
  const cd = document.getElementById('countdown');
  const elevated = me.class !== 'read';
  cd.hidden = !elevated;
  document.getElementById('top').classList.toggle('elevated', elevated);
  if (elevated) tick();
}

export async function login(username, password) {
  const r = await api.post('/hub/api/login', { username, password }, { allow401: true });
  setCsrf(r.csrf);
  await refresh();
  return me;
}

export async function logout() {
  try { await api.post('/hub/api/logout'); } catch (_) { /* gone either way */ }
  apply(null);
}

async function drop() {
  try {
    const r = await api.post('/hub/api/drop');
    setCsrf(r.csrf);
    await refresh();
    announce('You are read-only now.');
  } catch (e) {
    banner(`Could not drop privileges: ${e.message}`);
    render();
  }
}

// The elevation dialog: the password again, like sudo.
function askPassword(cls) {
  const dlg = document.getElementById('elevate-dialog');
  const form = document.getElementById('elevate-form');
  const pw = document.getElementById('elevate-password');
  const err = document.getElementById('elevate-error');
  const submit = document.getElementById('elevate-submit');
  document.getElementById('elevate-user').textContent = me.user;
  document.getElementById('elevate-what').textContent = cls === 'write'
    ? 'Write privileges allow broadcast (changing settings of running tasks) as well as control.'
    : 'Execute privileges allow controlling workflows and tasks (pause, stop, hold, kill, trigger…).';
  pw.value = '';
  err.hidden = true;
  submit.disabled = false;
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok) => {
      if (done) return;
      done = true;
      form.removeEventListener('submit', onSubmit);
      dlg.removeEventListener('cancel', onCancel);
      cancelBtn.removeEventListener('click', onCancel);
      if (dlg.open) dlg.close();
      resolve(ok);
    };
    const onCancel = (e) => { e.preventDefault(); finish(false); };
    const onSubmit = async (e) => {
      e.preventDefault();
      submit.disabled = true;
      err.hidden = true;
      try {
        const r = await api.post('/hub/api/elevate', { class: cls, password: pw.value }, { allow401: true });
        pw.value = '';
        setCsrf(r.csrf);
        await refresh();
        announce(`${cls} privileges raised`);
        finish(true);
      } catch (ex) {
        submit.disabled = false;
        err.textContent = ex.status === 401
          ? `${ex.message}: privileges were not raised.`
          : ex.status === 429 && ex.retryAfter
            ? `${ex.message} (try again in ${ex.retryAfter} s)`
            : ex.message;
        err.hidden = false;
        pw.select();
        pw.focus();
      }
    };
    const cancelBtn = document.getElementById('elevate-cancel');
    form.addEventListener('submit', onSubmit);
    dlg.addEventListener('cancel', onCancel);
    cancelBtn.addEventListener('click', onCancel);
    dlg.showModal();
    pw.focus();
  });
}

/** Wires the header controls once. */
export function init() {
  for (const b of document.querySelectorAll('.elevation .toggle')) {
    b.addEventListener('click', async () => {
      const want = b.dataset.class;
      if (!me || want === me.class) return;
      if (want === 'read') {
        await drop();
      } else {
        await askPassword(want);
      }
      render();
      const now = document.querySelector(`.elevation .toggle[data-class="${me ? me.class : 'read'}"]`);
      if (now) now.focus();
    });
  }
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && me) refresh().catch(() => {});
  });
}

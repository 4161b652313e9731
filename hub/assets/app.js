// Steward's web UI: a hash-routed single page.
//   #/                      workflows of every owner you may read (overview)
//   #/w/<owner>/<workflow>  one workflow, live, with actions, logs and "why can't I?"
//   #/audit?actor=&owner=…  the audit log (your workflows; everything for admins)
// Sign-in is shown whenever the hub says there is no session.

import { h, replace, clear, announce } from './dom.js';
import * as session from './session.js';
import { loginView } from './login.js';
import { overviewView } from './overview.js';
import { workflowView } from './workflow.js';
import { auditView } from './audit.js';

// For the end-to-end tests and for anyone debugging a deployment: CSP violations the
// page reports, and when this page was loaded (a reload resets it).
window.stewardCspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.stewardCspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
window.stewardLoadedAt = Date.now();

let teardown = null;
let afterLogin = null;
let loginReason = null;

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const i = raw.indexOf('?');
  const path = i < 0 ? raw : raw.slice(0, i);
  const params = new URLSearchParams(i < 0 ? '' : raw.slice(i + 1));
  const parts = path.split('/').filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch (_) { return p; }
  });
  return { parts, params };
}

function setNav(which) {
  for (const [id, name] of [['nav-overview', 'overview'], ['nav-audit', 'audit']]) {
    const a = document.getElementById(id);
    if (which === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function focusHeading(main) {
  const h1 = main.querySelector('h1');
  if (h1) {
    if (!h1.hasAttribute('tabindex')) h1.setAttribute('tabindex', '-1');
    // Moving focus to the new page's heading tells screen readers the page changed.
    if (!main.contains(document.activeElement) || document.activeElement === main) h1.focus();
  }
}

async function route() {
  // Already asking for a sign-in: keep the form (and whatever the user typed).
  if (!session.current() && document.getElementById('login-form')) return;
  if (teardown) {
    try { teardown(); } catch (e) { console.error(e); }
    teardown = null;
  }
  const main = document.getElementById('main');
  clear(main);
  const { parts, params } = parseHash();
  const me = session.current();
  if (!me) {
    if (parts[0] !== 'login') afterLogin = location.hash || '#/';
    document.title = 'Sign in · Steward';
    const reason = loginReason;
    loginReason = null;
    teardown = loginView(main, {
      reason,
      onDone: () => {
        const to = afterLogin && afterLogin !== '#/login' ? afterLogin : '#/';
        afterLogin = null;
        if (location.hash === to) route();
        else location.hash = to;
      },
    });
    return;
  }
  if (parts[0] === 'login') {
    location.hash = '#/';
    return;
  }
  if (parts.length === 0) {
    setNav('overview');
    document.title = 'Workflows · Steward';
    teardown = overviewView(main);
  } else if (parts[0] === 'w' && parts.length === 3) {
    setNav(null);
    document.title = `${parts[2]} (${parts[1]}) · Steward`;
    teardown = workflowView(main, parts[1], parts[2]);
  } else if (parts[0] === 'audit') {
    setNav('audit');
    document.title = 'Audit · Steward';
    teardown = auditView(main, params);
  } else {
    setNav(null);
    replace(main, h('h1', {}, 'Not found'), h('p', {}, 'There is no such page. ', h('a', { href: '#/' }, 'Back to the workflows')));
  }
  focusHeading(main);
}

window.addEventListener('steward:unauthenticated', (e) => {
  if (document.getElementById('login-form')) return;
  loginReason = (e.detail && String(e.detail)) || 'Please sign in.';
  session.refresh().catch(() => {}).finally(() => {
    if (!session.current()) route();
  });
});

async function start() {
  session.init();
  document.getElementById('logout').addEventListener('click', async () => {
    loginReason = 'You have signed out.';
    afterLogin = '#/';
    await session.logout();
    announce('Signed out');
    history.replaceState(null, '', '#/login');
  });
  let lastUser = null;
  session.onChange((me) => {
    const user = me ? me.user : null;
    if (user !== lastUser) {
      lastUser = user;
      // Signing out (or in as someone else) re-renders; a class change does not.
      if (!user) route();
    }
  });
  window.addEventListener('hashchange', route);
  try {
    await session.refresh();
  } catch (_) {
    replace(document.getElementById('main'),
      h('h1', {}, 'Steward'),
      h('p', { class: 'error', role: 'alert' }, 'Cannot reach the hub. Reload the page to try again.'));
    return;
  }
  lastUser = session.current() ? session.current().user : null;
  route();
}

start();

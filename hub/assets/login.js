// Sign-in page: the site's own accounts (PAM or LDAP, whichever the hub uses).
// Errors are shown as the hub states them; a rate limit shows how long to wait and
// keeps the button disabled until then.

import { h } from './dom.js';
import * as session from './session.js';

export function loginView(main, { reason, onDone }) {
  const user = h('input', { id: 'login-user', name: 'username', type: 'text', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const pass = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const err = h('p', { id: 'login-error', class: 'error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', id: 'login-submit', class: 'primary' }, 'Sign in');
  let waitTimer = null;

  const showError = (text) => {
    err.textContent = text;
    err.hidden = false;
  };

  // The hub limits failed attempts per user name and per address. While it says wait,
  // the button stays disabled and counts down; typing another user name unlocks it
  // (the per-address limit, if that was it, is the hub's to enforce).
  const unlock = () => {
    clearInterval(waitTimer);
    waitTimer = null;
    submit.disabled = false;
  };
  const rateLimited = (secs, message) => {
    if (!secs) {
      showError(message);
      submit.disabled = false;
      return;
    }
    let left = secs;
    submit.disabled = true;
    const show = () => showError(`Too many failed sign-in attempts. Try again in ${left} s.`);
    show();
    clearInterval(waitTimer);
    waitTimer = setInterval(() => {
      left -= 1;
      if (left <= 0) {
        unlock();
        showError('You may try again now.');
        return;
      }
      show();
    }, 1000);
  };
  user.addEventListener('input', () => {
    if (waitTimer) {
      unlock();
      err.hidden = true;
    }
  });

  const form = h('form', {
    id: 'login-form',
    class: 'card login',
    'aria-labelledby': 'login-title',
    onsubmit: async (e) => {
      e.preventDefault();
      if (submit.disabled) return;
      err.hidden = true;
      submit.disabled = true;
      submit.textContent = 'Signing in…';
      try {
        await session.login(user.value.trim(), pass.value);
        pass.value = '';
        clearInterval(waitTimer);
        onDone();
        return;
      } catch (ex) {
        pass.value = '';
        if (ex.status === 429) {
          rateLimited(ex.retryAfter, ex.message);
          submit.textContent = 'Sign in';
          return;
        }
        if (ex.status === 401) showError(`${ex.message}. Check both and try again.`);
        else if (ex.status === 503) showError(`${ex.message}. This is a problem on the server side; try again in a minute or tell your administrators.`);
        else showError(ex.message);
        (user.value ? pass : user).focus();
      }
      submit.disabled = false;
      submit.textContent = 'Sign in';
    },
  },
  h('h1', { id: 'login-title', tabindex: '-1' }, 'Sign in to Steward'),
  reason ? h('p', { class: 'notice', role: 'status' }, reason) : null,
  h('div', { class: 'field' }, h('label', { for: 'login-user' }, 'Username'), user),
  h('div', { class: 'field' }, h('label', { for: 'login-password' }, 'Password'), pass),
  err,
  h('div', { class: 'buttons' }, submit),
  h('p', { class: 'hint' }, 'Use your usual site account. You start read-only; raise your privileges when you need to act.'));

  main.appendChild(form);
  user.focus();
  return () => clearInterval(waitTimer);
}

// Small DOM helpers. Everything is built with createElement and textContent: no HTML
// strings, so nothing a server or a log file says can become markup.

/**
 * h('button', {class: 'x', onclick: f, dataset: {op: 'pause'}}, 'Pause')
 * Attributes named on* become event listeners; `dataset` fills data-*; boolean true
 * sets an empty attribute, false/null/undefined leaves it out.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'dataset') {
      for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = dv;
    } else if (k === 'class') {
      el.className = v;
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

/** Announces a short message to screen readers (the page's polite live region). */
export function announce(text) {
  const s = document.getElementById('status');
  if (!s) return;
  s.textContent = '';
  // A fresh text node after a tick makes repeated identical messages heard again.
  setTimeout(() => { s.textContent = text; }, 50);
}

/** `mm:ss` (or `h:mm:ss`) for a number of seconds. */
export function clock(secs) {
  secs = Math.max(0, Math.floor(secs));
  const h = Math.floor(secs / 3600);
  const m = Math.floor((secs % 3600) / 60);
  const s = secs % 60;
  const two = (n) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${two(m)}:${two(s)}`;
}

/** Numeric-aware comparison, so cycle 10 sorts after cycle 9. */
export const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

/** A short badge for a workflow or task state; the text is always there, not just colour. */
export function stateBadge(state) {
  const s = state || 'unknown';
  return h('span', { class: `state state-${s.replace(/[^a-z-]/g, '')}` }, s);
}

/** Builds a JavaScript RegExp that finds what the server searched for, or null. */
export function highlighter(query, regex, caseInsensitive) {
  if (!query) return null;
  try {
    const src = regex ? query : query.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return new RegExp(src, caseInsensitive ? 'gi' : 'g');
  } catch (_) {
    // The server's regex dialect (Rust) accepts some patterns JavaScript does not.
    return null;
  }
}

/** Appends `text` to `el`, wrapping every match of `re` in <mark>. Returns the hit count. */
export function appendHighlighted(el, text, re) {
  if (!re) {
    el.appendChild(document.createTextNode(text));
    return 0;
  }
  let last = 0;
  let hits = 0;
  re.lastIndex = 0;
  let m;
  while ((m = re.exec(text)) !== null) {
    if (m[0].length === 0) {
      re.lastIndex++;
      if (re.lastIndex > text.length) break;
      continue;
    }
    if (m.index > last) el.appendChild(document.createTextNode(text.slice(last, m.index)));
    el.appendChild(h('mark', {}, m[0]));
    hits++;
    last = m.index + m[0].length;
  }
  if (last < text.length) el.appendChild(document.createTextNode(text.slice(last)));
  return hits;
}

/** Form controls of a view get unique ids so labels can point at them. */
let idCounter = 0;
export function uid(prefix) {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** The 22 operations, in Cylc's order, with their elevation class. */
export const OPERATIONS = [
  'read', 'broadcast', 'clean', 'ext_trigger', 'hold', 'kill', 'message', 'pause', 'play',
  'poll', 'release', 'release_hold_point', 'reload', 'remove', 'resume', 'scan', 'set',
  'set_graph_window_extent', 'set_hold_point', 'set_verbosity', 'stop', 'trigger',
];
export function opClass(op) {
  if (op === 'read') return 'read';
  if (op === 'broadcast') return 'write';
  return 'execute';
}

// Job logs of one workflow: view a job's files, follow one live, and search every job
// log of the workflow with the hits highlighted.
//
// Reading goes through the hub's proxy to the owner's server
// (GET /user/<owner>/api/log, /api/search). Following asks the server over the page's
// WebSocket ({"type":"tail"} → "log" chunks → "log_end"); where the relay does not pass
// tails through, it falls back to reading new bytes every second while the job runs.

import { h, clear, uid, highlighter, appendHighlighted, announce } from './dom.js';
import { api, query } from './api.js';

const FILES = [['out', 'job.out'], ['err', 'job.err'], ['status', 'job.status'], ['activity', 'job-activity.log']];
const READ_LEN = 1024 * 1024;
const POLL_MS = 1000;
const MAX_SEARCH = 200;

/** Split "log/job/<cycle>/<task>/<NN>/<file>" when a match lacks the parsed fields. */
function parseFile(file) {
  const p = String(file || '').split('/');
  if (p.length === 6 && p[0] === 'log' && p[1] === 'job') {
    const f = FILES.find(([, n]) => n === p[5]);
    return { cycle: p[2], task: p[3], job: parseInt(p[4], 10), stream: f ? f[0] : 'out' };
  }
  return {};
}

export function createLogPanel({ owner, workflow, send, task }) {
  const base = `/user/${encodeURIComponent(owner)}/api`;
  let search = null; // {re, query}
  let cur = null; // {cycle, task, job, file, line}
  let loaded = 0; // bytes shown
  let decoder = null;
  let follow = { mode: null, id: null, timer: null, quietPolls: 0 };
  let tailSeq = 0;
  let tailUnsupported = false;
  let ctrl = null;

  // --- search ---------------------------------------------------------------------
  const qId = uid('log-q');
  const reId = uid('log-re');
  const ciId = uid('log-ci');
  const q = h('input', { id: qId, name: 'q', type: 'search', required: true, autocomplete: 'off' });
  const reBox = h('input', { id: reId, type: 'checkbox' });
  const ciBox = h('input', { id: ciId, type: 'checkbox' });
  const searchBtn = h('button', { type: 'submit', id: 'log-search-submit' }, 'Search');
  const summary = h('p', { id: 'log-search-summary', 'aria-live': 'polite' });
  const results = h('ol', { id: 'log-search-results', class: 'search-results' });

  async function runSearch() {
    const text = q.value;
    if (!text) return;
    searchBtn.disabled = true;
    summary.textContent = 'Searching…';
    clear(results);
    try {
      const r = await api.get(`${base}/search${query({
        workflow, q: text, regex: reBox.checked ? 'true' : '', case_insensitive: ciBox.checked ? 'true' : '', max: MAX_SEARCH,
      })}`);
      search = { re: highlighter(text, reBox.checked, ciBox.checked), query: text };
      const matches = r.matches || [];
      const files = new Set(matches.map((m) => m.file)).size;
      summary.textContent = matches.length
        ? `${matches.length}${r.truncated ? '+' : ''} matching line${matches.length === 1 ? '' : 's'} in ${files} file${files === 1 ? '' : 's'}${r.truncated ? ` (showing the first ${matches.length})` : ''}.`
        : `No line matches “${text}”${typeof r.files_scanned === 'number' ? ` in ${r.files_scanned} log files` : ''}.`;
      for (const m of matches) {
        const where = { ...parseFile(m.file), ...Object.fromEntries(Object.entries(m).filter(([k]) => ['cycle', 'task', 'job', 'stream'].includes(k))) };
        const fileName = (FILES.find(([k]) => k === where.stream) || [null, m.file])[1];
        const label = `${where.cycle}/${where.task} job ${String(where.job).padStart(2, '0')} ${fileName}, line ${m.line}`;
        const code = h('code', { class: 'hit-text' });
        appendHighlighted(code, m.text, search.re);
        results.appendChild(h('li', { dataset: { file: m.file, line: String(m.line) } },
          h('button', {
            type: 'button',
            class: 'link',
            onclick: () => open({ cycle: where.cycle, task: where.task, job: where.job, file: where.stream || 'out', line: m.line }),
          }, label),
          ' ', code));
      }
      // Re-mark the open log with the new query.
      if (cur) rerender();
    } catch (e) {
      summary.textContent = `Search failed: ${e.message}`;
    } finally {
      searchBtn.disabled = false;
    }
  }

  // --- viewer ---------------------------------------------------------------------
  const fileId = uid('log-file');
  const jobId = uid('log-job');
  const followId = uid('log-follow');
  const viewerTitle = h('h3', { id: 'log-title', tabindex: '-1' });
  const fileSel = h('select', { id: fileId }, FILES.map(([v, label]) => h('option', { value: v }, label)));
  const jobIn = h('input', { id: jobId, type: 'number', min: '1', step: '1', inputmode: 'numeric' });
  const followBox = h('input', { id: followId, type: 'checkbox' });
  const note = h('p', { id: 'log-note', class: 'muted', 'aria-live': 'polite' });
  const pre = h('pre', { id: 'log-text', class: 'log', tabindex: '0', 'aria-label': 'Log text' });
  let text = '';
  const viewer = h('div', { class: 'viewer', id: 'log-viewer', hidden: true },
    viewerTitle,
    h('form', {
      class: 'inline-form',
      onsubmit: (e) => { e.preventDefault(); reopen(); },
    },
    h('label', { for: fileId }, 'File'), fileSel,
    h('label', { for: jobId }, 'Job'), jobIn,
    h('button', { type: 'submit' }, 'Show'),
    h('span', { class: 'check' }, followBox, h('label', { for: followId }, 'Follow live'))),
    note,
    pre);

  fileSel.addEventListener('change', () => reopen());
  followBox.addEventListener('change', () => {
    if (followBox.checked) startFollow();
    else stopFollow('Stopped following.');
  });

  /** Appends one span per line of `str` (the last one may be partial), numbered from n. */
  function renderLines(str, n) {
    if (!str) return null;
    const lines = str.split('\n');
    const partial = lines.pop(); // '' when str ends with a newline
    let target = null;
    const add = (line, nl) => {
      const span = h('span', { class: 'line', dataset: { n: String(n) } });
      appendHighlighted(span, line, search ? search.re : null);
      if (nl) span.appendChild(document.createTextNode('\n'));
      if (cur && cur.line === n) {
        span.classList.add('hit-line');
        target = span;
      }
      pre.appendChild(span);
      n += 1;
    };
    for (const line of lines) add(line, true);
    if (partial) add(partial, false);
    return target;
  }

  function rerender() {
    clear(pre);
    const target = renderLines(text, 1);
    if (target) target.scrollIntoView({ block: 'center' });
  }

  function appendText(chunk) {
    if (!chunk) return;
    // Only the last, unfinished line is drawn again; earlier lines keep their nodes.
    const start = text.lastIndexOf('\n') + 1;
    if (start < text.length && pre.lastChild) pre.removeChild(pre.lastChild);
    const n = pre.children.length + 1;
    const tail = text.slice(start) + chunk;
    text += chunk;
    const target = renderLines(tail, n);
    if (followBox.checked) pre.scrollTop = pre.scrollHeight;
    else if (target) target.scrollIntoView({ block: 'center' });
  }

  async function fetchRange(offset) {
    ctrl = new AbortController();
    const resp = await api.raw(`${base}/log${query({
      workflow, cycle: cur.cycle, task: cur.task, job: cur.job || '', file: cur.file, offset, len: READ_LEN,
    })}`, { signal: ctrl.signal });
    const buf = await resp.arrayBuffer();
    const job = resp.headers.get('X-Log-Job');
    const size = parseInt(resp.headers.get('X-Log-Size') || '0', 10);
    return { bytes: new Uint8Array(buf), job: job ? parseInt(job, 10) : null, size };
  }

  async function open(where) {
    stopFollow(null);
    cur = { cycle: where.cycle, task: where.task, job: where.job || null, file: where.file || 'out', line: where.line || null };
    fileSel.value = cur.file;
    jobIn.value = cur.job ? String(cur.job) : '';
    viewer.hidden = false;
    text = '';
    loaded = 0;
    decoder = new TextDecoder('utf-8');
    clear(pre);
    const fname = (FILES.find(([k]) => k === cur.file) || [null, cur.file])[1];
    viewerTitle.textContent = `Log of ${cur.cycle}/${cur.task}${cur.job ? ` job ${String(cur.job).padStart(2, '0')}` : ''}: ${fname}`;
    viewer.dataset.task = `${cur.cycle}/${cur.task}`;
    viewer.dataset.file = cur.file;
    note.textContent = 'Loading…';
    viewerTitle.focus();
    try {
      const r = await fetchRange(0);
      if (r.job) {
        cur.job = r.job;
        jobIn.value = String(r.job);
        viewerTitle.textContent = `Log of ${cur.cycle}/${cur.task} job ${String(r.job).padStart(2, '0')}: ${fname}`;
      }
      loaded = r.bytes.length;
      appendText(decoder.decode(r.bytes, { stream: true }));
      note.textContent = r.size > loaded
        ? `Showing the first ${loaded} of ${r.size} bytes.`
        : `${loaded} bytes.`;
      const t = task(cur.cycle, cur.task);
      if (t && t.state === 'running' && t.job === cur.job) {
        note.textContent += ' The job is running: tick “Follow live” to watch it.';
      }
      if (followBox.checked) startFollow();
    } catch (e) {
      if (e.name === 'AbortError') return;
      note.textContent = `Cannot show this log: ${e.message}`;
    }
  }

  function reopen() {
    if (!cur) return;
    const job = parseInt(jobIn.value, 10);
    const follow = followBox.checked;
    open({ cycle: cur.cycle, task: cur.task, job: Number.isFinite(job) && job > 0 ? job : null, file: fileSel.value }).then(() => {
      if (follow && !followBox.checked) { followBox.checked = true; startFollow(); }
    });
  }

  // --- following ------------------------------------------------------------------
  function startFollow() {
    if (!cur) return;
    stopFollow(null);
    followBox.checked = true;
    if (!tailUnsupported) {
      tailSeq += 1;
      const id = `tail-${tailSeq}`;
      const ok = send({ type: 'tail', id, workflow, cycle: cur.cycle, task: cur.task, job: cur.job || undefined, file: cur.file, offset: loaded });
      if (ok) {
        follow = { mode: 'ws', id, timer: setTimeout(() => { if (follow.id === id && !follow.seen) fallback(); }, 3000), seen: false };
        note.textContent = 'Following live…';
        viewer.dataset.following = 'ws';
        return;
      }
    }
    fallback();
  }

  function fallback() {
    if (follow.mode === 'ws' && follow.id && !tailUnsupported) send({ type: 'untail', id: follow.id });
    clearTimeout(follow.timer);
    follow = { mode: 'poll', id: null, timer: null, quietPolls: 0 };
    viewer.dataset.following = 'poll';
    note.textContent = 'Following live (reading new output every second)…';
    const poll = async () => {
      if (follow.mode !== 'poll' || !cur) return;
      try {
        const r = await fetchRange(loaded);
        if (follow.mode !== 'poll') return;
        if (r.bytes.length) {
          loaded += r.bytes.length;
          appendText(decoder.decode(r.bytes, { stream: true }));
          follow.quietPolls = 0;
        } else {
          follow.quietPolls += 1;
        }
        const t = task(cur.cycle, cur.task);
        const running = t && t.state === 'running' && (!cur.job || t.job === cur.job);
        if (!running && follow.quietPolls >= 2) {
          stopFollow('The job is not running; the log is complete.');
          return;
        }
      } catch (e) {
        if (e.name === 'AbortError') return;
        stopFollow(`Stopped following: ${e.message}`);
        return;
      }
      follow.timer = setTimeout(poll, POLL_MS);
    };
    poll();
  }

  function stopFollow(message) {
    if (follow.mode === 'ws' && follow.id && !tailUnsupported) send({ type: 'untail', id: follow.id });
    clearTimeout(follow.timer);
    follow = { mode: null, id: null, timer: null, quietPolls: 0 };
    followBox.checked = false;
    delete viewer.dataset.following;
    if (message) {
      note.textContent = message;
      announce(message);
    }
  }

  /** A WebSocket message for this panel; true when it was one. */
  function onMessage(m) {
    if (m.type === 'log' && follow.mode === 'ws' && m.id === follow.id) {
      follow.seen = true;
      const bytes = new TextEncoder().encode(m.data || '');
      if (m.offset + bytes.length <= loaded) return true; // already shown
      loaded = m.offset + bytes.length;
      appendText(m.data);
      return true;
    }
    if (m.type === 'log_end' && m.id === follow.id) {
      if (m.reason !== 'untail') stopFollow(`Stopped following: ${m.reason}.`);
      return true;
    }
    if (m.type === 'log' || m.type === 'log_end') return true; // an old tail
    if (m.type === 'error' && follow.mode === 'ws') {
      if (m.id === follow.id) {
        stopFollow(`Cannot follow: ${m.message}`);
        return true;
      }
      if (!m.id && /tail|malformed|unknown variant/.test(m.message || '')) {
        // The relay does not pass tails through: read new bytes over HTTP instead.
        tailUnsupported = true;
        fallback();
        return true;
      }
    }
    return false;
  }

  function taskChanged(t) {
    if (!cur || t.cycle !== cur.cycle || t.task !== cur.task) return;
    if (t.job && cur.job && t.job !== cur.job && t.state === 'running') {
      note.textContent = `A newer job (${String(t.job).padStart(2, '0')}) is running; choose it under Job to see its log.`;
    }
  }

  function onDisconnect() {
    if (follow.mode === 'ws') {
      stopFollow('Stopped following: the connection closed.');
    }
  }

  const searchId = uid('h');
  const el = h('section', { class: 'card logs', id: 'logs', 'aria-labelledby': searchId },
    h('h2', { id: searchId }, 'Job logs'),
    h('form', {
      class: 'inline-form',
      role: 'search',
      id: 'log-search',
      onsubmit: (e) => { e.preventDefault(); runSearch(); },
    },
    h('label', { for: qId }, 'Search this workflow\'s logs'), q,
    h('span', { class: 'check' }, reBox, h('label', { for: reId }, 'Regular expression')),
    h('span', { class: 'check' }, ciBox, h('label', { for: ciId }, 'Ignore case')),
    searchBtn),
    summary,
    results,
    h('p', { class: 'hint' }, 'Or choose “Log” on a task to read its job output.'),
    viewer);

  return {
    el,
    open,
    onMessage,
    taskChanged,
    onDisconnect,
    close: () => {
      stopFollow(null);
      if (ctrl) ctrl.abort();
    },
  };
}

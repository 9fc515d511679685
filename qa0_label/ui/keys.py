"""Keyboard flow of the Label page: a key is applied to the EB that was on screen, or visibly refused.

Streamlit's button shortcuts fire whatever the page is doing: a key pressed while the page still updates could
land on an EB the AoD never saw, or be dropped by the server's double-press guard with only a toast. This
small script (installed once per browser tab, no network, no user data in it) sits in front of them:

- P / S / F / K / U (any key of KEY_BUTTONS) pressed while the page is idle clicks that button at once: the
  same path and latency as Streamlit's own shortcut;
- pressed while the page updates (or before the run a previous key started has finished) it is held, and
  when the page is idle again it is applied if the EB on screen is still the one that was there at the key
  press, otherwise refused with a notice on the page ("S not taken: the EB changed ...");
- in the comment box Enter commits the comment and leaves the box (focus back to the page, so the next
  letter is a decision), Escape leaves the box, and Alt + a key applies that key from inside the box.

A new key is one line in label.KEY_BUTTONS (the button with that widget key gets it).
"""

from __future__ import annotations

import json

import streamlit as st

NOTICE_ID = "qa0-key-notice"
"""DOM id of the notice that says a key was held or not taken (tests look for it)."""

_SCRIPT = """
<script>
(() => {
  const cfg = __CFG__;
  window.__qa0KeyCfg = cfg;
  if (cfg.release) {
    // A name was just chosen in the sidebar: the cursor is still in that box and the first P would type a
    // "p" there. Give the keys back to the page (only from the sidebar: never out of the comment box).
    const d = (window.parent && window.parent.document) ? window.parent.document : document;
    const a = d.activeElement;
    if (a && a.closest && a.closest('[data-testid="stSidebar"]')) a.blur();
  }
  if (window.__qa0KeysInstalled) return;
  window.__qa0KeysInstalled = true;
  const root = window.parent && window.parent.document ? window.parent : window;
  const doc = root.document;
  const state = () => doc.querySelector('[data-testid="stApp"]')?.getAttribute('data-test-script-state');
  const uidNow = () => (doc.querySelector('.st-key-qa0-uid')?.textContent || '').trim();
  let held = null;        // {key, uid}: a key waiting for the page to finish updating
  let awaiting = null;    // {since, sawRun}: a key or comment was sent, its run has not finished yet
  let timer = null;

  const notice = (text, kind) => {
    let el = doc.getElementById(cfg.notice);
    if (!el) {
      el = doc.createElement('div');
      el.id = cfg.notice;
      el.setAttribute('role', 'status');
      el.setAttribute('aria-live', 'polite');
      el.style.cssText = 'position:fixed;left:50%;bottom:24px;transform:translateX(-50%);z-index:100000;' +
        'padding:10px 18px;border-radius:8px;font:600 15px sans-serif;box-shadow:0 2px 10px rgba(0,0,0,.25);';
      doc.body.appendChild(el);
    }
    el.textContent = text;  // text only: never HTML
    el.dataset.kind = kind;
    el.style.background = kind === 'refused' ? '#b3261e' : '#12355b';
    el.style.color = '#ffffff';
    el.style.display = 'block';
    clearTimeout(el.__hide);
    el.__hide = setTimeout(() => { el.style.display = 'none'; }, kind === 'refused' ? 6000 : 2500);
  };
  const hideNotice = () => { const el = doc.getElementById(cfg.notice); if (el && el.dataset.kind === 'held') el.style.display = 'none'; };

  const button = (key) => doc.querySelector('.st-key-' + cfg.keys[key] + ' button');
  const send = (key) => {
    const b = button(key);
    if (!b || b.disabled) return false;
    awaiting = {since: performance.now(), sawRun: false};
    b.click();
    tick();
    return true;
  };
  const idle = () => state() === 'notRunning';

  // Every change of the script state is seen (a run shorter than a poll interval too).
  let watched = null;
  const watch = () => {
    const app = doc.querySelector('[data-testid="stApp"]');
    if (!app || app === watched) return;
    watched = app;
    new MutationObserver(() => {
      if (awaiting && !idle()) awaiting.sawRun = true;
      tick();
    }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  };

  function tick() {
    clearTimeout(timer);
    watch();
    if (awaiting) {
      if (!idle()) awaiting.sawRun = true;
      // The run a key started has finished (or none came within 5 s: nothing to wait for; a busy server
      // can take seconds to start it, and a key sent before then would land on the old EB).
      else if (awaiting.sawRun || performance.now() - awaiting.since > 5000) awaiting = null;
    }
    if (held && !awaiting && idle()) {
      const h = held;
      held = null;
      hideNotice();
      if (uidNow() && uidNow() === h.uid) send(h.key);
      else notice(h.key + ' not taken: the EB changed while the page was updating. Look, then press again.', 'refused');
    }
    if (held || awaiting) timer = setTimeout(tick, 30);
  }

  root.addEventListener('keydown', (e) => {
    // When the key was pressed (this listener runs first, so benchmarks read the press time here).
    root.__qa0LastKeyAt = performance.now();
    if (typeof e.key !== 'string' || !doc.querySelector('.st-key-qa0-actions')) return;
    const t = e.target;
    const inComment = t && t.closest && t.closest('.st-key-' + cfg.comment);
    const letter = (e.code && e.code.startsWith('Key')) ? e.code.slice(3) : e.key.toUpperCase();
    if (inComment) {
      if (e.key === 'Enter' || e.key === 'Escape') {
        // Leave the box now (leaving commits the text, as Enter does), so the very next letter is a decision
        // for the page, not more comment. A key pressed right after waits for that commit's run.
        awaiting = {since: performance.now(), sawRun: false};
        t.blur();
        tick();
      } else if (e.altKey && !e.ctrlKey && !e.metaKey && cfg.keys[letter]) {
        e.preventDefault();
        e.stopImmediatePropagation();
        awaiting = {since: performance.now(), sawRun: false};
        t.blur();
        held = {key: letter, uid: uidNow()};
        tick();
      }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || !cfg.keys[letter]) return;
    if (t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName))) return;
    e.preventDefault();
    e.stopImmediatePropagation();  // Streamlit's own shortcut listener must not fire as well
    if (e.repeat) return;          // a held key is one decision
    const uid = uidNow();
    if (!uid) return;
    if (idle() && !awaiting && !held) { send(letter); return; }
    held = {key: letter, uid: uid};
    notice(letter + ' noted for ' + uid + ': waiting for the page to finish updating…', 'held');
    tick();
  }, true);
})();
</script>
"""


def install(*, key_buttons: dict[str, str], comment_key: str, release_focus: str | None = None) -> None:
    """Put the key script on the page (one invisible element; the script runs once per browser tab).

    release_focus: a fresh token after the AoD chose a name in the sidebar; the script then takes the focus out
    of the sidebar (a new token makes the element new, so its script runs again).
    """
    cfg = {
        "keys": {k.upper(): v for k, v in key_buttons.items()},
        "comment": comment_key,
        "notice": NOTICE_ID,
        "release": release_focus,
    }
    # Only fixed widget keys and key letters go into the script (json-encoded); no user data.
    body = _SCRIPT.replace("__CFG__", json.dumps(cfg))
    st.html(body, unsafe_allow_javascript=True)

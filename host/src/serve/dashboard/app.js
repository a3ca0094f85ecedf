// The dashboard's one script: follows running jobs over Server-Sent Events
// (the API's own job events, through /ui/jobs/{id}/events), follows an
// environment's logs while its panel is open (/ui/env/{project}/{env}/logs)
// and asks before a button changes an environment. Every string from the
// server is set with textContent, never parsed as HTML: log lines are the
// service's own output, untrusted.
"use strict";

// A job event as a label and one line of detail: mirrors phases.rs.
function describe(e) {
  const s = (v) => (typeof v === "string" ? v : "");
  const n = (v) => (v === undefined || v === null ? "" : String(v));
  switch (e && e.type) {
    case "planned_change": {
      const c = e.change || {};
      return ["plan", `${s(c.action)} ${s(c.kind)} ${s(c.name)}`];
    }
    case "change_summary": {
      if (e.no_changes === true) return ["plan", "no changes"];
      const c = e.changes || {};
      return ["plan", `${n(c.add)} to add, ${n(c.change)} to change, ${n(c.destroy)} to destroy`];
    }
    case "rollout_start":
      return ["rollout", `release ${s(e.release)} to ${n(e.targets)} target(s)`];
    case "rollout_done":
      return ["healthy", `${s(e.host)}: ${s(e.health)}`];
    case "deployed":
      return ["deployed", `release ${s(e.release)} at ${s(e.url)}`];
    case "retrying":
      return ["retrying", `attempt ${n(e.attempt)} failed: ${s(e.reason)}`];
    case "error":
      return ["error", s(e.message)];
    case "output":
      return ["output", s(e.line)];
    default:
      return [s(e && e.type) || "event", ""];
  }
}

// The step an event completes: mirrors phases::step_of.
const STEP_OF = { change_summary: "planned", rollout_done: "rolled-out", deployed: "deployed" };

const TONES = {
  succeeded: "ok", failed: "bad", interrupted: "bad", running: "warn",
  queued: "warn", retrying: "warn", cancelled: "warn",
};

function setBadge(el, status) {
  el.textContent = status;
  el.className = "badge " + (TONES[status] || "idle");
}

function markStep(root, step) {
  const li = root.querySelector(`[data-step="${step}"]`);
  if (li) li.classList.add("done");
}

// The job page: append each event, tick its step, show the end.
function followJob(root) {
  const list = document.getElementById("events");
  const status = document.getElementById("job-status");
  const problem = document.getElementById("job-error");
  const source = new EventSource(root.dataset.events);
  source.addEventListener("progress", (msg) => {
    let data;
    try { data = JSON.parse(msg.data); } catch { return; }
    const [label, detail] = describe(data);
    const li = document.createElement("li");
    const tag = document.createElement("span");
    tag.className = "label";
    tag.textContent = label;
    li.append(tag, " " + detail);
    list.append(li);
    markStep(root, "running");
    if (status.textContent === "queued") setBadge(status, "running");
    if (STEP_OF[data.type]) markStep(root, STEP_OF[data.type]);
  });
  source.addEventListener("end", (msg) => {
    source.close();
    let end = {};
    try { end = JSON.parse(msg.data); } catch { /* keep the defaults */ }
    setBadge(status, typeof end.status === "string" ? end.status : "ended");
    markStep(root, "running");
    markStep(root, "finished");
    if (typeof end.error === "string" && end.error) {
      problem.textContent = end.error;
      problem.hidden = false;
    }
    root.dataset.live = "0";
    showPhases();
  });
  source.addEventListener("error", () => {
    // EventSource reconnects by itself (with Last-Event-ID); once the
    // stream has ended for good there is nothing to do.
    if (root.dataset.live === "0") source.close();
  });
}

// Once a job has ended, its audit record's phases (with their timings)
// are on its page: take that section from a fresh copy of the page. The
// copy is parsed inert (DOMParser runs no script) and is the server's own
// escaped markup.
async function showPhases() {
  try {
    const response = await fetch(window.location.pathname, { credentials: "same-origin" });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById("phases");
    const here = document.getElementById("phases");
    if (fresh && here) here.replaceWith(document.importNode(fresh, true));
  } catch {
    // The phases stay one reload away.
  }
}

// A jobs table: running jobs' status badges follow their stream's end.
function followRows() {
  const cells = Array.from(document.querySelectorAll("[data-live-job]")).slice(0, 4);
  for (const cell of cells) {
    const badge = cell.querySelector(".badge");
    const source = new EventSource(cell.dataset.liveJob);
    source.addEventListener("progress", () => {
      if (badge.textContent === "queued") setBadge(badge, "running");
    });
    source.addEventListener("end", (msg) => {
      source.close();
      try { setBadge(badge, JSON.parse(msg.data).status); } catch { /* leave it */ }
    });
  }
}

// Most log lines kept on the page; older ones are dropped.
const MAX_LOG_LINES = 2000;

// The environment page's logs panel: while it is open, its lines follow
// the service's output (a `start` event, then the backlog, which replaces
// what the page was rendered with, then each new line). Closing the panel
// closes the stream, and the server stops following.
function followLogs(panel) {
  const pre = document.getElementById("log-lines");
  const empty = document.getElementById("log-empty");
  const problem = document.getElementById("logs-problem");
  const state = document.getElementById("logs-state");
  let source = null;
  let fresh = false;
  let received = 0;
  const show = (word, tone) => {
    state.textContent = word;
    state.className = "badge " + tone;
    panel.dataset.state = word;
  };
  const stop = (word, tone) => {
    if (source) source.close();
    source = null;
    show(word, tone);
  };
  const start = () => {
    if (source) return;
    problem.hidden = true;
    show("connecting", "warn");
    source = new EventSource(panel.dataset.follow);
    source.addEventListener("start", () => {
      fresh = true;
      show("live", "ok");
    });
    source.addEventListener("line", (msg) => {
      let data;
      try { data = JSON.parse(msg.data); } catch { return; }
      const line = typeof data.line === "string" ? data.line : "";
      const host = typeof data.host === "string" && data.host !== "local" ? `[${data.host}] ` : "";
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      if (fresh) {
        pre.textContent = "";
        fresh = false;
      }
      pre.append(document.createTextNode(host + line + "\n"));
      while (pre.childNodes.length > MAX_LOG_LINES) pre.firstChild.remove();
      pre.hidden = false;
      empty.hidden = true;
      if (atEnd) pre.scrollTop = pre.scrollHeight;
      received += 1;
      panel.dataset.received = String(received);
    });
    source.addEventListener("end", (msg) => {
      let end = {};
      try { end = JSON.parse(msg.data); } catch { /* keep the defaults */ }
      stop("ended", "bad");
      if (typeof end.error === "string" && end.error) {
        problem.textContent = end.error;
        problem.hidden = false;
      }
    });
    source.addEventListener("error", () => {
      // EventSource reconnects by itself; say so meanwhile.
      if (source && source.readyState === EventSource.CONNECTING) show("reconnecting", "warn");
      if (source && source.readyState === EventSource.CLOSED) stop("not live", "idle");
    });
  };
  panel.addEventListener("toggle", () => (panel.open ? start() : stop("paused", "idle")));
  if (panel.open) start();
}

document.addEventListener("DOMContentLoaded", () => {
  const job = document.getElementById("job");
  if (job && job.dataset.live === "1") followJob(job);
  followRows();
  const logs = document.getElementById("logs-panel");
  if (logs && logs.dataset.follow) followLogs(logs);
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (ev) => {
      if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
    });
  }
});

// The linechat mail page: lists messages live (Server-Sent Events, polling as a fallback),
// shows one (HTML in a sandboxed frame, text, headers, raw, attachments), searches, deletes.
// Everything the sender wrote is put into the page as text, never as markup.
"use strict";

const API = "/api/v1";
const PAGE = 50;
const state = { offset: 0, total: 0, query: "", selected: null, tab: "html", message: null };

const $ = (selector) => document.querySelector(selector);

function people(list) {
  return (list || []).map((p) => (p.name ? `${p.name} <${p.address}>` : p.address)).join(", ");
}

function when(iso) {
  const date = new Date(iso);
  return isNaN(date) ? iso : date.toLocaleString();
}

async function api(path, options) {
  const response = await fetch(API + path, options);
  if (!response.ok) throw new Error(`${response.status} ${path}`);
  return response.status === 204 ? null : response.json();
}

let listCalls = 0;
async function loadList() {
  // Replies can come back out of order (a search typed while a refresh is in flight):
  // only the newest call may draw the list, or an older, staler answer could win.
  const call = ++listCalls;
  const params = new URLSearchParams({ offset: state.offset, limit: PAGE });
  if (state.query) params.set("text", state.query);
  const data = await api(`/messages?${params}`);
  if (call !== listCalls) return;
  state.total = data.total;
  const body = $("#messages tbody");
  body.replaceChildren();
  for (const message of data.messages) body.append(row(message));
  $("#empty").hidden = data.total > 0;
  $("#count").textContent = `${data.total} message${data.total === 1 ? "" : "s"}`;
  $("#prev").disabled = state.offset === 0;
  $("#next").disabled = state.offset + PAGE >= data.total;
}

function row(message) {
  const tr = document.createElement("tr");
  tr.dataset.id = message.id;
  if (message.id === state.selected) tr.classList.add("selected");
  const cells = [people(message.from) || message.return_path, message.subject || "(no subject)",
    people(message.to) || message.delivered_to.join(", "), when(message.received)];
  const classes = ["from", "subject", "to", "received"];
  cells.forEach((text, index) => {
    const td = document.createElement("td");
    td.className = classes[index];
    td.textContent = text;
    td.title = text;
    tr.append(td);
  });
  tr.addEventListener("click", () => openMessage(message.id));
  return tr;
}

async function openMessage(id) {
  state.selected = id;
  for (const tr of document.querySelectorAll("#messages tbody tr")) {
    tr.classList.toggle("selected", tr.dataset.id === id);
    if (tr.dataset.id === id) tr.classList.remove("fresh");
  }
  let message;
  try {
    message = await api(`/messages/${encodeURIComponent(id)}`);
  } catch (error) {
    closeView();
    return;
  }
  state.message = message;
  $("#view").hidden = false;
  $("#view-subject").textContent = message.subject || "(no subject)";
  const meta = $("#view-meta");
  meta.replaceChildren();
  const fields = [["From", people(message.from)], ["To", people(message.to)], ["Cc", people(message.cc)],
    ["Bcc", people(message.bcc)], ["Envelope", `${message.return_path || "<>"} \u2192 ${message.delivered_to.join(", ")}`],
    ["Date", message.date ? when(message.date) : ""], ["Received", when(message.received)], ["Size", `${message.size} bytes`]];
  for (const [name, value] of fields) {
    if (!value) continue;
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value;
    meta.append(dt, dd);
  }
  // The message's HTML runs in a frame without scripts or our origin (the frame's sandbox and the
  // response's CSP) and may load nothing remote; the server puts its own cid: images inline.
  $("#pane-html").src = message.html === null ? "about:blank" : `${API}/messages/${encodeURIComponent(id)}/html`;
  $("#pane-text").textContent = message.text === null ? "(no text part)" : message.text;
  const headers = $("#pane-headers tbody");
  headers.replaceChildren();
  for (const [name, value] of message.headers) {
    const tr = document.createElement("tr");
    const n = document.createElement("td");
    n.textContent = name;
    const v = document.createElement("td");
    v.textContent = value;
    tr.append(n, v);
    headers.append(tr);
  }
  $("#pane-raw").textContent = "";
  const list = $("#pane-attachments");
  list.replaceChildren();
  for (const part of message.attachments) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = `${API}/messages/${encodeURIComponent(id)}/parts/${part.index}`;
    a.textContent = part.filename || `part ${part.index}`;
    li.append(a, ` ${part.content_type}, ${part.size} bytes`);
    list.append(li);
  }
  $("#attachment-count").textContent = message.attachments.length ? `(${message.attachments.length})` : "";
  showTab(message.html === null && state.tab === "html" ? "text" : state.tab);
}

async function showTab(tab) {
  state.tab = tab;
  for (const button of document.querySelectorAll("#tabs button")) button.classList.toggle("active", button.dataset.tab === tab);
  for (const pane of document.querySelectorAll(".pane")) pane.classList.toggle("active", pane.id === `pane-${tab}`);
  if (tab === "raw" && state.selected && !$("#pane-raw").textContent) {
    const response = await fetch(`${API}/messages/${encodeURIComponent(state.selected)}/raw`);
    $("#pane-raw").textContent = response.ok ? await response.text() : `(${response.status})`;
  }
}

function closeView() {
  state.selected = null;
  state.message = null;
  $("#view").hidden = true;
}

async function deleteSelected() {
  if (!state.selected) return;
  const id = state.selected;
  await fetch(`${API}/messages/${encodeURIComponent(id)}`, { method: "DELETE" });
  removeRow(id);
}

function removeRow(id) {
  const tr = document.querySelector(`#messages tbody tr[data-id="${CSS.escape(id)}"]`);
  if (tr) tr.remove();
  if (state.selected === id) closeView();
  refreshSoon();
}

let refreshTimer = null;
function refreshSoon() {
  // Many events in a burst (a test run sending 100 mails) make one reload.
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; loadList().catch(() => {}); }, 150);
}

let pollTimer = null;
function listen() {
  if (!window.EventSource) return poll();
  const source = new EventSource(`${API}/events`);
  source.onopen = () => {
    $("#live").classList.add("on");
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
    // Mail that arrived after the first list was fetched and before the stream was open
    // (or while it was down) sent its event to nobody: reload once the stream is listening.
    refreshSoon();
  };
  source.onerror = () => { $("#live").classList.remove("on"); poll(); };
  source.addEventListener("message", () => refreshSoon());
  source.addEventListener("deleted", (event) => removeRow(JSON.parse(event.data).id));
  source.addEventListener("cleared", () => { closeView(); refreshSoon(); });
}

function poll() {
  if (!pollTimer) pollTimer = setInterval(() => loadList().catch(() => {}), 3000);
}

function init() {
  for (const button of document.querySelectorAll("#tabs button")) button.addEventListener("click", () => showTab(button.dataset.tab));
  $("#delete").addEventListener("click", deleteSelected);
  $("#delete-all").addEventListener("click", async () => {
    if (!confirm("Delete every message?")) return;
    await fetch(`${API}/messages`, { method: "DELETE" });
    closeView();
    loadList();
  });
  let searchTimer = null;
  $("#search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { state.query = $("#search").value.trim(); state.offset = 0; loadList(); }, 200);
  });
  $("#search-form").addEventListener("submit", (event) => event.preventDefault());
  $("#prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); loadList(); });
  $("#next").addEventListener("click", () => { state.offset += PAGE; loadList(); });
  loadList().catch(() => poll());
  listen();
}

document.addEventListener("DOMContentLoaded", init);

// semsearch page: plain JavaScript, no build step, no outside hosts.
const $ = (sel) => document.querySelector(sel);
const status = $("#status");

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = body.error || (Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : body.detail);
    throw new Error(detail || `HTTP ${response.status}`);
  }
  return body;
}

function say(message, isError = false) {
  status.textContent = message;
  status.className = isError ? "error" : "";
}

const leaf = (path) => path.split("/").pop();

function hitView(hit) {
  const chips = hit.categories.map((c) =>
    el("span", { class: `chip ${hit.category_source === "predicted" ? "predicted" : ""}`, title: c },
      leaf(c) + (hit.category_source === "predicted" ? " (predicted)" : "")));
  const related = el("div", { class: "related", hidden: "" });
  const item = el("article", { class: "result", "data-id": hit.id },
    el("h3", {}, hit.url ? el("a", { href: hit.url, target: "_blank", rel: "noopener" }, hit.title) : hit.title),
    el("div", { class: "meta" }, hit.year ? String(hit.year) : "", ...chips,
      hit.score !== undefined ? el("span", {}, `score ${hit.score.toFixed(3)}`) : ""),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "secondary related-button", onclick: () => toggleRelated(hit.id, related) }, "Related"),
      el("button", { type: "button", class: "secondary", onclick: () => showBibtex(hit.id) }, "BibTeX")),
    related);
  return item;
}

async function toggleRelated(id, container) {
  if (!container.hidden) { container.hidden = true; return; }
  container.hidden = false;
  container.replaceChildren(el("p", {}, "Loading related work…"));
  try {
    const data = await api(`/api/related/${encodeURIComponent(id)}?k=5`);
    container.replaceChildren(el("h4", {}, "Related work"), ...data.results.map(hitView));
  } catch (err) {
    container.replaceChildren(el("p", { class: "error" }, err.message));
  }
}

async function showBibtex(id) {
  try {
    const paper = await api(`/api/papers/${encodeURIComponent(id)}`);
    $("#bibtex-text").textContent = paper.bibtex;
    $("#bibtex-dialog").showModal();
  } catch (err) { say(err.message, true); }
}

$("#copy-bibtex").addEventListener("click", async () => {
  await navigator.clipboard?.writeText($("#bibtex-text").textContent).catch(() => {});
  $("#copy-bibtex").textContent = "Copied";
  setTimeout(() => ($("#copy-bibtex").textContent = "Copy"), 1500);
});
$("#close-bibtex").addEventListener("click", () => $("#bibtex-dialog").close());

function showSection(id) {
  say("");
  for (const section of ["#results", "#classify", "#taxonomy"]) $(section).hidden = section !== id;
}

async function search(question) {
  showSection("#results");
  say("Searching…");
  try {
    const data = await api(`/api/search?q=${encodeURIComponent(question)}&k=10`);
    $("#results").replaceChildren(...data.results.map(hitView));
    say(`${data.results.length} papers for “${data.query}”`);
  } catch (err) { say(err.message, true); }
}

$("#search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const question = $("#q").value.trim();
  if (!question) return;
  history.replaceState(null, "", `?q=${encodeURIComponent(question)}`);
  search(question);
});

function treeView(nodes) {
  return nodes.map((node) => {
    const predicted = node.papers - node.labelled;
    const count = predicted ? `(${node.labelled} + ${predicted} predicted)` : `(${node.papers})`;
    const label = el("span", {}, node.name, " ", el("span", { class: "count" }, count));
    const list = el("button", { type: "button", class: "node-link", onclick: () => listNode(node.path) }, "list papers");
    if (!node.children.length) return el("div", { class: "leaf" }, label, " ", list);
    return el("details", {}, el("summary", {}, label), el("div", {}, list), ...treeView(node.children));
  });
}

async function listNode(path) {
  showSection("#results");
  say("Loading…");
  try {
    const data = await api(`/api/papers?category=${encodeURIComponent(path)}&limit=100`);
    $("#results").replaceChildren(el("h2", {}, leaf(data.category)), ...data.results.map(hitView));
    say(`${data.results.length} papers under ${data.category}`);
  } catch (err) { say(err.message, true); }
}

$("#show-taxonomy").addEventListener("click", async () => {
  showSection("#taxonomy");
  if (!$("#taxonomy").childElementCount) {
    try { $("#taxonomy").replaceChildren(el("h2", {}, "Taxonomy"), ...treeView(await api("/api/taxonomy"))); }
    catch (err) { say(err.message, true); }
  }
});

$("#show-classify").addEventListener("click", () => { showSection("#classify"); $("#c-title").focus(); });

$("#classify-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const out = $("#classify-result");
  out.replaceChildren(el("p", {}, "Thinking…"));
  try {
    const data = await api("/api/classify", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ title: $("#c-title").value, abstract: $("#c-abstract").value }),
    });
    const [best, ...others] = data.suggestions;
    out.replaceChildren(
      el("p", { class: "suggestion" }, best.category.replaceAll("/", " › ")),
      el("p", {}, `confidence ${data.confidence.toFixed(2)} — ${data.in_scope ? "in scope" : "out of scope: far from every part of the taxonomy"}`),
      el("h3", {}, "Alternatives"),
      el("ul", {}, others.map((s) => el("li", {}, `${s.category.replaceAll("/", " › ")} (${s.score.toFixed(2)})`))),
      el("h3", {}, "Closest labelled papers"),
      el("ul", {}, data.neighbours.map((n) => el("li", {}, `${n.title} — ${n.categories.map(leaf).join(", ")}`))));
  } catch (err) { out.replaceChildren(el("p", { class: "error" }, err.message)); }
});

$("#show-digest").addEventListener("click", async () => {
  showSection("#results");
  say("Loading…");
  try {
    const { digests } = await api("/api/digests");
    if (!digests.length) { $("#results").replaceChildren(); say("No digest yet: run `semsearch watch`, or serve with --watch-every 24h."); return; }
    const digest = await api(`/api/digests/${encodeURIComponent(digests[0].name)}`);
    const groups = Object.entries(digest.groups).map(([node, items]) => el("section", { class: "digest-group" },
      el("h3", {}, node.replaceAll("/", " › ")),
      el("ul", {}, items.map((e) => el("li", {},
        e.url ? el("a", { href: e.url, target: "_blank", rel: "noopener" }, e.title) : e.title,
        ` (${e.id}), confidence ${e.confidence.toFixed(2)}`)))));
    $("#results").replaceChildren(el("h2", {}, `New papers, ${digest.since} to ${digest.until} (UTC)`), ...groups);
    say(`${digests[0].papers} new papers in the latest digest`);
  } catch (err) { say(err.message, true); }
});

const initial = new URLSearchParams(location.search).get("q");
if (initial) { $("#q").value = initial; search(initial); }

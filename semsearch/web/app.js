// semsearch page: plain JavaScript and SVG, no build step, nothing from other hosts.
// Every view has a URL (/?q=..., /paper/ID, /?view=trends&category=...), so any screen can be shared.
const $ = (sel, root = document) => root.querySelector(sel);
const view = $("#view");
const statusLine = $("#status");
const EXAMPLES = [
  "how do I shrink the KV cache for long prompts?",
  "the paper that keeps attention sinks",
  "speculative decoding with a small draft model",
  "quantizing weights to 4 bits",
  "my fine-tuning run does not fit on one GPU",
];
const STOPWORDS = new Set("the a an and or of for to in on with by how do i my is are what which that this from can paper papers about".split(" "));
const SVG = "http://www.w3.org/2000/svg";

// The only links the page makes: absolute http(s) URLs, and the app's own paths ("/..." on this
// origin). Anything else (javascript:, data:, //other.host, "/\other.host") is null, and el() then
// leaves the href out, so the text shows but is not a link. Every href goes through el().
function safeUrl(value) {
  const text = String(value ?? "");
  let url;
  try { url = new URL(text, location.origin); } catch { return null; }
  if (text.startsWith("/") && !text.startsWith("//") && !text.startsWith("/\\")) return url.origin === location.origin ? text : null;
  if (/^https?:\/\//i.test(text) && (url.protocol === "http:" || url.protocol === "https:")) return url.href;
  return null;
}

// Whether a link goes to arXiv, by its host: one with arxiv.org as a user name before another
// host, or in another host's path, does not.
function onArxiv(value) {
  try { const host = new URL(value).hostname; return host === "arxiv.org" || host.endsWith(".arxiv.org"); } catch { return false; }
}

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.setAttribute("class", value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "style") node.style.cssText = value; // CSSOM: the page's CSP forbids style attributes
    else if (key === "href" || key === "xlink:href") { const href = safeUrl(value); if (href !== null) node.setAttribute(key, href); }
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Each move to another view (a link, back, a search) starts a new navigation and ends the last
// one: its requests are cancelled, and an answer of theirs is never drawn over the view the reader
// has moved on to (a slow paper over the classify form), nor said in the status line.
let navigation = new AbortController();
const never = () => new Promise(() => {}); // what a cancelled request gives: the view it was for stops there

// `lasting`: the request is the whole page's (the taxonomy picker), not one view's.
async function api(path, options = {}, { lasting = false } = {}) {
  const turn = lasting ? null : navigation.signal;
  let response, body;
  try {
    response = await fetch(path, turn ? { ...options, signal: turn } : options);
    body = await response.json().catch(() => null);
  } catch (err) {
    if (turn?.aborted) return never();
    // The browser's own words ("Failed to fetch", "Load failed") say nothing to a reader.
    throw new Error("The server did not answer: is `semsearch serve` still running?");
  }
  if (turn?.aborted) return never();
  if (!response.ok || body === null) { // semsearch's errors are {"error": ...}; a proxy's may be a page of HTML
    const err = new Error(body?.error || `The server answered ${response.status} ${response.statusText}`.trim() + ", not with an answer the page can read.");
    err.status = response.status; // a view may tell "not there" (404) from a failure
    throw err;
  }
  return body;
}

// A view's parts, leaving out those that are not there (null, false): the DOM's own replaceChildren
// writes null as the word "null". Every view is written through show().
function show(...parts) {
  view.replaceChildren(...parts.flat().filter((part) => part !== null && part !== undefined && part !== false));
}

function say(message, isError = false) {
  statusLine.textContent = message;
  statusLine.className = isError ? "error" : "";
}

const leaf = (path) => path.split("/").pop();
const chosenTaxonomy = () => new URLSearchParams(location.search).get("taxonomy") || "";
const withTaxonomy = (query) => (chosenTaxonomy() ? `${query}&taxonomy=${encodeURIComponent(chosenTaxonomy())}` : query);

async function taxonomyPicker() { // shown only when the index has taxonomies from curated lists
  const picker = $("#taxonomy");
  const rows = await api("/api/taxonomies", {}, { lasting: true }).catch(() => []);
  picker.replaceChildren(...rows.map((t) => el("option", { value: t.name === "survey" ? "" : t.name }, t.name)));
  picker.value = chosenTaxonomy();
  picker.hidden = rows.length < 2;
}
const number = (n) => Number(n).toLocaleString("en");
// A share or a probability as "N%", 0–100: a cosine (the "meaning" of a match) is below 0 for a
// paper found by its words alone, and was shown as "-0%" or "-20%".
const percent = (share) => `${Math.round(Math.min(1, Math.max(0, Number(share) || 0)) * 100)}%`;
const pathText = (path) => path.replaceAll("/", " › ");
const paperHref = (id) => `/paper/${encodeURIComponent(id)}`;
// A node of the picked list's taxonomy (a hit's chips, classify's answer, the Taxonomy view's tree
// with a list picked) keeps the pick; a node of the survey's (the landing's treemap, trends, a paper's
// own categories) is the survey's: with a list picked its link asked the list for a survey node (400).
const nodeHref = (path) => withTaxonomy(`/?view=node&category=${encodeURIComponent(path)}`);
const surveyNodeHref = (path) => `/?view=node&category=${encodeURIComponent(path)}`;
const link = (href, ...children) => el("a", { href, "data-route": true }, ...children);
// A paper's own words (its title, its abstract) take their own direction: a title in Arabic or
// Hebrew reads right to left, its punctuation at its end, whatever the page's direction.
const titleLink = (paper) => el("a", { href: paperHref(paper.id), "data-route": true, dir: "auto" }, paper.title);

function authorsText(authors = []) {
  return authors.length > 4 ? `${authors.slice(0, 4).join(", ")} et al.` : authors.join(", ");
}

function humanStamp(stamp) { // 202411280000 → 28 Nov 2024
  if (!stamp) return "";
  const date = new Date(Date.UTC(+stamp.slice(0, 4), +stamp.slice(4, 6) - 1, +stamp.slice(6, 8)));
  return date.toLocaleDateString("en-GB", { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
}

function highlighted(text, question) {
  const words = (question || "").toLowerCase().match(/[a-z0-9-]{3,}/g)?.filter((w) => !STOPWORDS.has(w)) || [];
  if (!words.length) return [text];
  const pattern = new RegExp(`(${words.map((w) => w.replace(/[-]/g, "\\-")).join("|")})`, "gi");
  return text.split(pattern).map((part, i) => (i % 2 ? el("mark", {}, part) : part));
}

function dotted(parts) { // "Ada Lovelace · 2023 · arXiv", leaving out what is missing
  return el("span", {}, parts.filter((p) => p !== null && p !== undefined && p !== "")
    .flatMap((p, i) => (i ? [" · ", p] : [p])));
}

function chip(category, source, href = nodeHref) {
  const label = leaf(category) + (source === "predicted" ? " (predicted)" : source === "user" ? " (yours)" : "");
  return el("a", { class: `chip ${source || ""}`, href: href(category), "data-route": true, title: pathText(category) }, label);
}

function whyText(explain) {
  if (!explain) return "";
  if (explain.question === "an arXiv id") return "The question is its arXiv id.";
  const parts = [`meaning matches ${percent(explain.dense)}`];
  if (explain.lexical > 0) parts.push(`its words match ${percent(explain.lexical_share)} as well as the best match`);
  if (explain.question && explain.taxonomy_weight > 0) {
    const sure = explain.question === "one paper" ? explain.one_paper : 1 - explain.one_paper;
    parts.push(`the question was taken for one about ${explain.question} (${percent(sure)} likely), so the taxonomy weighed ${explain.taxonomy_weight.toFixed(1)} against the paper's own match`);
  }
  if (explain.named) parts.push("the question names it (its method's name or its title), so it is placed first, or second after the best match of a longer question");
  else if (explain.beside_named) parts.push("the question is a name alone, so the named paper's related work follows it, this paper among it");
  else if (explain.direct) parts.push("it is one of the question's best matches by its own text, which come first for a question about one paper");
  else if (explain.category) parts.push(`${percent(explain.category_probability)} chance it is in the kind of work the question asks about (${leaf(explain.category)})`);
  return parts.join("; ") + ".";
}

// --- results ---------------------------------------------------------------------------------------
function hitView(hit, question = "") {
  const abstract = hit.abstract || "";
  const short = abstract.length > 300 ? abstract.slice(0, 300).replace(/\s+\S*$/, "") + " …" : abstract;
  const text = el("p", { class: "abstract", dir: "auto" }, highlighted(short, question));
  const related = el("div", { class: "related", hidden: true });
  const why = el("p", { class: "why", hidden: true }, whyText(hit.explain));
  const where = hit.venue || (hit.url ? el("a", { href: hit.url, rel: "noopener" }, onArxiv(hit.url) ? "arXiv" : "link") : "");
  let expanded = false;
  const actions = [
    abstract.length > 300 && el("button", { type: "button", class: "secondary", "aria-expanded": "false", onclick: (e) => {
      expanded = !expanded;
      text.replaceChildren(...highlighted(expanded ? abstract : short, question));
      e.target.textContent = expanded ? "Less" : "Whole abstract";
      e.target.setAttribute("aria-expanded", String(expanded));
    } }, "Whole abstract"),
    hit.explain && el("button", { type: "button", class: "secondary why-button", "aria-expanded": "false", onclick: (e) => {
      why.hidden = !why.hidden;
      e.currentTarget.setAttribute("aria-expanded", String(!why.hidden));
    } }, "Why"),
    el("button", { type: "button", class: "secondary related-button", "aria-expanded": "false", onclick: (e) => {
      e.currentTarget.setAttribute("aria-expanded", String(related.hidden)); // it is about to open, or to close
      toggleRelated(hit.id, related);
    } }, "Related"),
    el("button", { type: "button", class: "secondary", onclick: () => showBibtex(hit.id) }, "BibTeX"),
    likeButton(hit.id),
  ];
  return el("article", { class: "result", "data-id": hit.id, "data-year": hit.year },
    el("h3", { dir: "auto" }, link(paperHref(hit.id), hit.title)), // the heading takes the direction, and is right-aligned with it
    el("div", { class: "meta" }, dotted([authorsText(hit.authors), hit.year, where]),
      ...hit.categories.map((c) => chip(c, hit.category_source))),
    abstract ? text : null, why, el("div", { class: "actions" }, actions), related);
}

async function toggleRelated(id, container, diverse = false) {
  if (!container.hidden && !diverse) { container.hidden = true; return; }
  container.hidden = false;
  container.replaceChildren(el("p", {}, "Loading related work…"));
  try {
    const data = await api(withTaxonomy(`/api/related/${encodeURIComponent(id)}?k=5&details=true${diverse ? "&diverse=true" : ""}`));
    container.replaceChildren(el("h4", {}, "Related work"), ...data.results.map((h) => hitView(h)));
  } catch (err) { container.replaceChildren(el("p", { class: "error" }, err.message)); }
}

async function showBibtex(id) {
  try {
    const paper = await api(`/api/papers/${encodeURIComponent(id)}`);
    $("#bibtex-text").textContent = paper.bibtex;
    $("#bibtex-dialog").showModal();
  } catch (err) { say(err.message, true); }
}

// An id a reader can use (an arXiv id); the index's own ids for papers without one ("survey:…") are not shown.
const shownId = (id) => (String(id).startsWith("survey:") ? null : id);

let surveyNodes = null;
async function taxonomyNodes() { // every node of the survey's taxonomy, parents first: [{path, leaf}], fetched once
  if (!surveyNodes) {
    const nodes = [];
    const walk = (level) => level.forEach((n) => { nodes.push({ path: n.path, leaf: !n.children.length }); walk(n.children); });
    walk(await api("/api/taxonomy"));
    surveyNodes = nodes;
  }
  return surveyNodes;
}

async function leafPaths() { // every leaf's path: where the survey files papers, so what a label names
  return (await taxonomyNodes()).filter((n) => n.leaf).map((n) => n.path); // labels are the survey's taxonomy's
}

async function nodeOptions() { // every node path, for the category pickers
  return el("datalist", { id: "nodes" }, (await taxonomyNodes()).map((n) => el("option", { value: n.path })));
}

async function resultsView(params) {
  const question = params.get("q");
  const k = Math.min(Number(params.get("k")) || 10, 100);
  $("#q").value = question;
  const form = el("form", { class: "filters", "aria-label": "Filters", onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams({ q: question });
    if (chosenTaxonomy()) next.set("taxonomy", chosenTaxonomy());
    for (const name of ["year_from", "year_to", "category"]) {
      const value = form.elements[name].value.trim();
      if (value) next.set(name, value);
    }
    go(`/?${next}`);
  } },
  el("label", {}, "From year", el("input", { name: "year_from", type: "number", min: 1990, max: 2100, value: params.get("year_from") })),
  el("label", {}, "To year", el("input", { name: "year_to", type: "number", min: 1990, max: 2100, value: params.get("year_to") })),
  el("label", {}, "Category", el("input", { name: "category", list: "nodes", value: params.get("category"), placeholder: "any" })),
  el("button", { type: "submit", class: "secondary" }, "Filter"), await nodeOptions());
  const list = el("div", { id: "results" });
  show(el("h2", { class: "visually-hidden" }, `Results for “${question}”`), form, list); // the results' own heading, for a screen reader's list
  say("Searching…");
  const query = new URLSearchParams({ q: question, k, details: "true", explain: "true" });
  for (const name of ["year_from", "year_to", "category", "taxonomy"]) if (params.get(name)) query.set(name, params.get(name));
  const data = await api(`/api/search?${query}`);
  list.replaceChildren(...(data.explanation ? [el("p", { class: "why-summary" }, data.explanation)] : []), ...data.results.map((h) => hitView(h, question)));
  const filters = [params.get("year_from") && `from ${params.get("year_from")}`, params.get("year_to") && `up to ${params.get("year_to")}`,
    params.get("category") && `in “${params.get("category")}”`].filter(Boolean);
  if (!data.results.length) {
    const unfiltered = new URLSearchParams({ q: question });
    if (chosenTaxonomy()) unfiltered.set("taxonomy", chosenTaxonomy());
    list.replaceChildren(el("p", { class: "empty" }, filters.length
      ? [`No paper matches with these filters: ${filters.join(", ")}. `, link(`/?${unfiltered}`, "Search without filters")]
      : "No paper matches this question. Try other words, or fewer of them."));
    say(filters.length ? `0 papers for “${data.query}” ${filters.join(", ")}` : `0 papers for “${data.query}”`);
    return;
  }
  const firstNew = list.querySelectorAll(":scope > .result")[k - 10]; // after "More results": where the reader goes on
  if (k > 10 && firstNew) firstNew.querySelector("h3 a").dataset.focusHere = "";
  if (data.results.length === k && k < 100) {
    const more = new URLSearchParams(params); more.set("k", String(k + 10));
    list.append(el("p", { class: "more" }, el("a", { href: `/?${more}`, "data-route": true, "data-keep-scroll": true }, "More results")));
  }
  say(`${data.results.length} papers for “${data.query}”`);
}

// --- landing: what the index holds, examples, the taxonomy as a treemap, what is new ----------------
function squarify(items, x, y, w, h) { // items sorted by value desc → [{item, x, y, w, h}]
  const out = [];
  let rest = items.slice();
  while (rest.length) {
    const total = rest.reduce((s, i) => s + i.value, 0);
    const short = Math.min(w, h);
    let row = [], best = Infinity;
    for (const item of rest) {
      const candidate = [...row, item];
      const sum = candidate.reduce((s, i) => s + i.value, 0);
      const side = (sum / total) * (w * h) / short;
      const worst = Math.max(...candidate.map((i) => Math.max(side / ((i.value / sum) * short), ((i.value / sum) * short) / side)));
      if (worst > best) break;
      row = candidate; best = worst;
    }
    const sum = row.reduce((s, i) => s + i.value, 0);
    const thickness = (sum / total) * (w >= h ? w : h);
    let offset = 0;
    for (const item of row) {
      const length = (item.value / sum) * short;
      out.push(w >= h ? { item, x, y: y + offset, w: thickness, h: length } : { item, x: x + offset, y, w: length, h: thickness });
      offset += length;
    }
    if (w >= h) { x += thickness; w -= thickness; } else { y += thickness; h -= thickness; }
    rest = rest.slice(row.length);
  }
  return out;
}

const TOP_COLOURS = ["#2456c7", "#c2410c", "#15803d", "#7c3aed", "#b91c1c"];
const CHAR_WIDTH = 7.6, LINE_HEIGHT = 15; // of the treemap's 12px labels, rounded up: a label that fits here fits

// A node's whole name, word-wrapped to fit a w×h cell, or null when it cannot fit: a name is never
// cut ("Efficient Pre-Tr…"); a cell too small for it shows none, and its title and the legend name it.
function labelLines(name, w, h) {
  const perLine = Math.floor((w - 10) / CHAR_WIDTH), most = Math.floor((h - 6) / LINE_HEIGHT);
  if (perLine < 3 || most < 1) return null;
  const lines = [];
  for (const word of name.split(/\s+/)) {
    if (word.length > perLine) return null;
    const last = lines.length ? lines[lines.length - 1] : null;
    if (last !== null && last.length + 1 + word.length <= perLine) lines[lines.length - 1] = `${last} ${word}`;
    else lines.push(word);
  }
  return lines.length <= most ? lines : null;
}

function shade(hex, step) { // the colour darkened by 12% a step: white labels keep their contrast
  const f = 1 - 0.12 * step;
  return "#" + [1, 3, 5].map((i) => Math.round(parseInt(hex.slice(i, i + 2), 16) * f).toString(16).padStart(2, "0")).join("");
}

function treemapLegend(tree, href = surveyNodeHref) {
  return el("ul", { class: "legend" }, tree.filter((n) => n.papers).sort((a, b) => b.papers - a.papers).map((n, i) =>
    el("li", {}, el("span", { class: "swatch", style: `background: ${TOP_COLOURS[i % TOP_COLOURS.length]}` }),
      link(href(n.path), n.name), ` (${number(n.papers)})`)));
}

function treemap(tree, href = surveyNodeHref, width = 900, height = 420) {
  const colours = TOP_COLOURS;
  const svg = el("svg:svg", { class: "treemap", viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": "The taxonomy, each area sized by its papers" });
  const tops = tree.filter((n) => n.papers).map((n) => ({ node: n, value: n.papers })).sort((a, b) => b.value - a.value);
  squarify(tops, 0, 0, width, height).forEach((top, t) => {
    const children = top.item.node.children.filter((c) => c.papers).map((c) => ({ node: c, value: c.papers })).sort((a, b) => b.value - a.value);
    const cells = children.length ? squarify(children, top.x, top.y, top.w, top.h) : [top];
    cells.forEach((cell, i) => {
      const node = cell.item.node;
      const title = `${pathText(node.path)}: ${number(node.papers)} papers`;
      const rect = el("svg:rect", { x: cell.x, y: cell.y, width: Math.max(cell.w, 0), height: Math.max(cell.h, 0),
        fill: shade(colours[t % colours.length], i % 3), tabindex: 0, role: "link",
        "aria-label": title, onclick: () => go(href(node.path)),
        onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(href(node.path)); } } },
      el("svg:title", {}, title));
      svg.append(rect);
      const lines = labelLines(node.name, cell.w, cell.h);
      if (lines) {
        svg.append(el("svg:text", { x: cell.x + 6, y: cell.y + 16, "aria-hidden": "true" },
          lines.map((line, n) => el("svg:tspan", { x: cell.x + 6, dy: n ? LINE_HEIGHT : 0 }, line))));
      }
    });
  });
  return svg;
}

function digestEntries(groups) {
  return Object.entries(groups).map(([node, items]) => el("section", { class: "digest-group" },
    el("h3", {}, pathText(node)),
    el("ul", {}, items.map((e) => el("li", {},
      titleLink(e),
      el("div", { class: "meta" }, dotted([authorsText(e.authors), shownId(e.id), `confidence ${e.confidence.toFixed(2)}`])),
      e.snippet ? el("p", { class: "abstract", dir: "auto" }, e.snippet) : null)))));
}

async function landingView() {
  const [overview, tree] = await Promise.all([api("/api/overview"), api("/api/taxonomy")]);
  const stat = (value, label) => el("div", { class: "stat" }, el("b", {}, value), el("span", {}, label));
  const lastWatch = overview.last_watch ? new Date(overview.last_watch).toLocaleDateString("en-GB", { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" }) : "never";
  const fresh = Object.values(overview.new_papers).reduce((s, items) => s + items.length, 0);
  show(
    el("section", { class: "stats", "aria-label": "What the index holds" },
      stat(number(overview.papers), "papers"),
      stat(number(overview.with_abstract), "with an abstract"),
      stat(number(overview.survey_labelled), "filed by the survey"),
      stat(number(overview.predicted + overview.user_labelled), "placed by semsearch or you"),
      stat(lastWatch, "last arXiv watch")),
    overview.with_abstract < overview.papers ? el("p", { class: "hint" },
      `${number(overview.papers - overview.with_abstract)} papers are indexed by title only (the survey lists titles; `,
      "offline, nothing more is fetched). To search their abstracts too, run ", el("code", {}, "semsearch ingest survey"),
      " once with a network connection.") : null,
    el("h2", {}, "Try a question"),
    el("ul", { class: "examples" }, EXAMPLES.map((q) => el("li", {}, link(`/?q=${encodeURIComponent(q)}`, q)))),
    el("h2", {}, "The taxonomy"),
    el("p", { class: "meta" }, "Each area is sized by its papers; click one to list them."),
    treemap(tree), treemapLegend(tree),
    el("h2", {}, fresh ? `New since the last watch (${fresh})` : "New since the last watch"),
    fresh ? el("div", {}, digestEntries(overview.new_papers))
      : el("p", { class: "meta" }, "Nothing yet: run `semsearch watch`, or serve with --watch-every 24h."));
  say("");
}

// --- taxonomy, node lists, trends ---------------------------------------------------------------
function treeView(nodes, href = surveyNodeHref) {
  return nodes.map((node) => {
    const predicted = node.papers - node.labelled;
    const count = predicted ? `(${node.labelled} + ${predicted} predicted)` : `(${node.papers})`;
    if (!node.children.length) return el("div", { class: "leaf" }, link(href(node.path), node.name), " ", el("span", { class: "count" }, count));
    // A summary holds no link (a control inside a control): the node's list is the first line inside.
    return el("details", {}, el("summary", {}, node.name, " ", el("span", { class: "count" }, count)),
      el("div", { class: "leaf" }, link(href(node.path), `All papers under ${node.name}`)), ...treeView(node.children, href));
  });
}

// The picked list's tree, its nodes listing the list's papers (the survey's drew under a picker
// naming the list); the survey's without a pick.
async function taxonomyView(params) {
  const name = params.get("taxonomy") || "";
  const tree = await api(name ? `/api/taxonomy?taxonomy=${encodeURIComponent(name)}` : "/api/taxonomy");
  const href = name ? nodeHref : surveyNodeHref;
  const lists = el("p", { class: "lists" }, "Give back to a list (proposed lines, gaps): ");
  show(el("h2", {}, name ? `Taxonomy: ${name}` : "Taxonomy"), lists, treemap(tree, href), treemapLegend(tree, href),
    el("div", { class: "tree" }, treeView(tree, href)));
  const rows = await api("/api/taxonomies").catch(() => []);
  rows.forEach((t, i) => lists.append(i ? ", " : "", link(`/?view=list&taxonomy=${encodeURIComponent(t.name)}`, t.name)));
  say("");
}

const feedHref = (taxonomy, node) => `/feeds/${encodeURIComponent(taxonomy || "survey")}/${node.split("/").map(encodeURIComponent).join("/")}.atom`;
const feedLink = (href, text) => el("a", { href, class: "feed", type: "application/atom+xml" }, text);

// --- a list's view: what semsearch would add to it, and the topics it has not named -----------------
async function listView(params) {
  const name = params.get("taxonomy") || "survey";
  const sureAt = params.get("min_confidence"); // the page's URL may set how sure a proposal must be
  const sureParam = sureAt ? `min_confidence=${encodeURIComponent(sureAt)}` : ""; // the patch's path names the list
  const query = `taxonomy=${encodeURIComponent(name)}${sureParam ? `&${sureParam}` : ""}`;
  show(el("h2", {}, `Give back to ${name}`));
  say("Placing the papers the list lacks…");
  // Either part may fail on its own (the index may keep no README of the list to propose against):
  // the other is shown all the same, with the failure in words.
  const [found, gaps] = await Promise.all([
    api(`/api/propose?${query}`).catch((err) => ({ error: err.message, proposals: [], patch: "", unsure: 0 })),
    api(`/api/gaps?taxonomy=${encodeURIComponent(name)}`).catch((err) => ({ error: err.message, gaps: [] }))]);
  const sure = found.proposals.filter((p) => !p.unsure);
  const byNode = {};
  for (const p of sure) (byNode[p.node] ||= []).push(p);
  const proposal = (p) => el("li", { class: "proposal" },
    titleLink(p), " ", el("span", { class: "confidence" }, percent(p.confidence)),
    el("pre", { class: "line" }, p.line));
  const nothing = found.unsure
    ? `No line is sure enough for the patch: ${found.unsure} unsure, below.`
    : "Nothing to propose: the list holds every paper of the index on its topic.";
  view.append(
    found.error ? el("p", { class: "error" }, found.error)
      : el("p", {}, found.patch
        ? el("a", { href: `/api/propose/${encodeURIComponent(name)}.patch?${sureParam}`, download: `${name}.patch`, class: "button", id: "download-patch" }, "Download the patch")
        : nothing),
    el("h3", {}, `Proposed lines (${sure.length})`),
    ...Object.entries(byNode).map(([node, items]) => el("section", { class: "proposals" }, el("h4", {}, pathText(node)), el("ul", {}, items.map(proposal)))),
    ...(found.unsure ? [el("details", {}, el("summary", {}, `${found.unsure} unsure, left out of the patch`),
      el("ul", {}, found.proposals.filter((p) => p.unsure).map((p) => el("li", {}, titleLink(p), ` → ${leaf(p.node)} (${percent(p.confidence)})`))))] : []),
    ...(found.removed?.length ? [el("p", { class: "hint", id: "taken-out" },
      `Not proposed again: ${found.removed.length} ${found.removed.length === 1 ? "paper" : "papers"} the list took out (${found.removed.join(", ")}).`)] : []),
    el("h3", {}, `Topics the list has not named (${gaps.gaps.length})`),
    ...(gaps.error ? [el("p", { class: "error" }, gaps.error)] : []),
    ...gaps.gaps.map((g) => el("section", { class: "gap" },
      el("h4", {}, g.name, " ", el("span", { class: "count" }, `${g.papers.length} papers, under ${g.parent ? pathText(g.parent) : "the top level"}`)),
      el("ul", {}, g.papers.slice(0, 20).map((p) => el("li", {}, titleLink(p)))))));
  say(`${sure.length} lines proposed, ${found.unsure} unsure; ${gaps.gaps.length} gaps`);
}

async function nodeView(params) {
  const data = await api(withTaxonomy(`/api/papers?category=${encodeURIComponent(params.get("category"))}&limit=100&details=true`));
  const byDate = params.get("sort") === "date";
  const results = byDate
    ? [...data.results].sort((a, b) => (b.published || String(b.year || "")).localeCompare(a.published || String(a.year || "")) || b.score - a.score)
    : data.results; // the API lists them closest to the node first
  const sorter = el("select", { id: "node-sort", onchange: () => {
    const next = new URLSearchParams(location.search);
    if (sorter.value === "date") next.set("sort", "date"); else next.delete("sort");
    go(`/?${next}`, true);
  } }, el("option", { value: "closeness", selected: !byDate }, "closest to this node first"),
  el("option", { value: "date", selected: byDate }, "newest first"));
  show(el("h2", {}, pathText(data.category)),
    chosenTaxonomy() ? null : el("p", {}, link(`/?view=trends&category=${encodeURIComponent(data.category)}`, "Papers per year under this node")),
    el("p", {}, feedLink(feedHref(chosenTaxonomy(), data.category), "Follow this node (Atom feed)")),
    el("p", { class: "filters" }, el("label", { for: "node-sort" }, "Sort "), sorter),
    ...results.map((h) => hitView(h)));
  say(`${data.results.length} papers under ${leaf(data.category)}, ${byDate ? "newest first" : "closest to the node first"}`);
}

function lineChart(trends) {
  const width = 720, height = 320, left = 44, bottom = 28, top = 12, right = 28;
  const series = Object.entries(trends);
  const years = [...new Set(series.flatMap(([, counts]) => Object.keys(counts)))].map(Number).sort();
  const svg = el("svg:svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Papers per year" });
  if (!years.length) return svg;
  const first = years[0], last = years[years.length - 1];
  const most = Math.max(1, ...series.flatMap(([, counts]) => Object.values(counts)));
  const x = (year) => left + (last === first ? (width - left - right) / 2 : ((year - first) / (last - first)) * (width - left - right));
  const y = (n) => height - bottom - (n / most) * (height - top - bottom);
  for (const tick of [0, Math.ceil(most / 2), most]) {
    svg.append(el("svg:line", { class: "grid", x1: left, x2: width - right, y1: y(tick), y2: y(tick) }),
      el("svg:text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end" }, tick));
  }
  for (let year = first; year <= last; year++) svg.append(el("svg:text", { x: x(year), y: height - 8, "text-anchor": "middle" }, year));
  series.forEach(([, counts], i) => {
    const points = [];
    for (let year = first; year <= last; year++) points.push(`${x(year)},${y(counts[year] || 0)}`);
    svg.append(el("svg:polyline", { points: points.join(" "), fill: "none", stroke: `var(--series-${i + 1})`, "stroke-width": 2.5 }));
    for (let year = first; year <= last; year++) {
      svg.append(el("svg:circle", { cx: x(year), cy: y(counts[year] || 0), r: 3.5, fill: `var(--series-${i + 1})` },
        el("svg:title", {}, `${year}: ${counts[year] || 0}`)));
    }
  });
  return svg;
}

async function trendsView(params) {
  const chosen = params.getAll("category").slice(0, 3);
  const inputs = [0, 1, 2].map((i) => el("input", { name: "category", list: "nodes", value: chosen[i], placeholder: i ? "compare with…" : "a taxonomy node", "aria-label": `Node ${i + 1}` }));
  const form = el("form", { class: "filters", onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams({ view: "trends" });
    inputs.map((input) => input.value.trim()).filter(Boolean).forEach((value) => next.append("category", value));
    go(`/?${next}`);
  } }, ...inputs.map((input) => el("label", {}, input)), el("button", { type: "submit", class: "secondary" }, "Draw"), await nodeOptions());
  show(el("h2", {}, "Papers per year"), form);
  if (!chosen.length) { say("Pick up to three nodes to compare."); return; }
  const { trends } = await api(`/api/trends?${chosen.map((c) => `category=${encodeURIComponent(c)}`).join("&")}`);
  view.append(lineChart(trends), el("ul", { class: "legend" }, Object.entries(trends).map(([node, counts], i) =>
    el("li", {}, el("span", { class: "swatch", style: `background: var(--series-${i + 1})` }),
      link(surveyNodeHref(node), leaf(node)), ` (${Object.values(counts).reduce((a, b) => a + b, 0)} papers)`))));
  say("");
}

// --- papers you liked, and what to read next ------------------------------------------------------
// Kept in this browser only (localStorage, one list per server address): the index holds no
// reader's taste, and a page served to several readers must not mix theirs.
const TASTE_KEY = "semsearch.taste";
const MAX_TASTE = 200; // the API's most papers in one recommendation

// {likes, dislikes}: ids, oldest first; whatever else is stored there is read as none. An id that is
// not well-formed text (a lone surrogate) cannot go in a URL: encodeURIComponent threw "URI
// malformed" and failed the view. A paper both liked and disliked (the buttons never keep both;
// something else wrote it) is liked: the API refuses it as both.
let tasteHere = null; // what the browser would not store (storage full or off): kept while the page lives

function taste() {
  let kept = tasteHere;
  if (kept === null) try { kept = JSON.parse(localStorage.getItem(TASTE_KEY)); } catch { kept = null; }
  const wellFormed = (id) => { try { encodeURIComponent(id); return true; } catch { return false; } };
  const ids = (list) => (Array.isArray(list) ? [...new Set(list.filter((id) => typeof id === "string" && id && id.length <= 200 && wellFormed(id)))] : []);
  const likes = ids(kept?.likes).slice(-MAX_TASTE);
  return { likes, dislikes: ids(kept?.dislikes).filter((id) => !likes.includes(id)).slice(-MAX_TASTE) };
}

function setOpinion(id, opinion) { // "like", "dislike", or null to forget the paper
  const now = taste();
  now.likes = now.likes.filter((x) => x !== id);
  now.dislikes = now.dislikes.filter((x) => x !== id);
  if (opinion === "like") now.likes.push(id);
  if (opinion === "dislike") now.dislikes.push(id);
  const next = { likes: now.likes.slice(-MAX_TASTE), dislikes: now.dislikes.slice(-MAX_TASTE) };
  try { localStorage.setItem(TASTE_KEY, JSON.stringify(next)); tasteHere = null; }
  catch { // as said: kept in the page itself, not lost at once
    tasteHere = next;
    say("This browser keeps nothing for the page (storage is off or full): likes last until the page closes.", true);
  }
}

// A toggle: its name stays "Like" and aria-pressed says whether it is on, as a screen reader expects.
function likeButton(id) {
  const liked = () => taste().likes.includes(id);
  const button = el("button", { type: "button", class: "secondary like-button", "aria-pressed": String(liked()), onclick: () => {
    setOpinion(id, liked() ? null : "like");
    button.setAttribute("aria-pressed", String(liked()));
  } }, "Like");
  return button;
}

async function likedView() {
  const { likes, dislikes } = taste();
  const intro = el("p", { class: "meta" }, "Kept in this browser only. Press Like on any paper (in results, related work or its page); what to read next is learned from them, and from those you mark Not for me.");
  if (!likes.length) {
    show(el("h2", {}, "Papers you liked"), intro, el("p", { class: "empty" }, "None yet."));
    say("");
    return;
  }
  // Each paper as this index holds it; one it does not hold (404: liked on another index served at
  // this address) is said, and can be forgotten, rather than failing the whole view. Any other
  // failure (the server gone a moment) fails the view: read as "not here", one click forgot every like.
  const read = (id) => api(`/api/papers/${encodeURIComponent(id)}`).then((paper) => ({ id, paper }),
    (err) => { if (err.status === 404) return { id, paper: null }; throw err; });
  const [liked, disliked] = await Promise.all([Promise.all(likes.map(read)), Promise.all(dislikes.map(read))]);
  const [likedHere, dislikedHere] = [liked, disliked].map((rows) => rows.filter((r) => r.paper));
  const missing = [...liked, ...disliked].filter((r) => !r.paper).map((r) => r.id);
  const again = () => route().then(landFocus); // drawn anew; the keyboard goes on from the heading
  const row = (r, undo) => el("li", { "data-id": r.id }, titleLink(r.paper), " ",
    el("button", { type: "button", class: "link", onclick: () => { setOpinion(r.id, null); again(); } }, undo));
  const next = el("div", { id: "recommended" });
  show(el("h2", {}, `Papers you liked (${likedHere.length})`), intro,
    el("ul", { class: "liked" }, likedHere.map((r) => row(r, "Remove"))),
    missing.length ? el("p", { class: "hint" }, `${missing.length} ${missing.length === 1 ? "paper you marked is" : "papers you marked are"} not in this index (marked on another one served at this address). `,
      el("button", { type: "button", class: "link", onclick: () => { missing.forEach((id) => setOpinion(id, null)); again(); } }, "Forget them")) : null,
    dislikedHere.length ? [el("h3", {}, "Not for me"), el("ul", { class: "disliked" }, dislikedHere.map((r) => row(r, "Undo")))] : null,
    el("h2", {}, "What to read next"), next);
  if (!likedHere.length) { next.replaceChildren(el("p", { class: "empty" }, "Like a paper this index holds to get recommendations.")); say(""); return; }
  say("Finding what to read next…");
  const data = await api("/api/recommend", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ likes: likedHere.map((r) => r.id), dislikes: dislikedHere.map((r) => r.id), k: 10, details: true }) });
  next.replaceChildren(...data.results.map((hit) => {
    const view = hitView(hit);
    view.querySelector(".actions").append(el("button", { type: "button", class: "secondary", onclick: () => { setOpinion(hit.id, "dislike"); again(); } }, "Not for me"));
    return view;
  }));
  say(`${data.results.length} papers to read next, from ${likedHere.length} you liked`);
}

// --- classify -------------------------------------------------------------------------------------
function classifyView() {
  const out = el("div", { id: "classify-result", "aria-live": "polite" });
  const form = el("form", { id: "classify-form", class: "stack", onsubmit: async (event) => {
    event.preventDefault();
    out.replaceChildren(el("p", {}, "Thinking…"));
    try {
      const data = await api("/api/classify", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ title: $("#c-title").value, abstract: $("#c-abstract").value, taxonomy: chosenTaxonomy() || null }) });
      const [, ...others] = data.suggestions;
      const verdict = data.in_scope
        ? `In scope: it belongs with the survey's papers (${percent(data.scope)} sure). ${percent(data.confidence)} chance this area of the taxonomy is right.`
        : `Out of scope: ${percent(data.scope)} chance it belongs with the survey's papers (in scope from ${percent(data.scope_threshold)}); it is closer to other kinds of research.`;
      out.replaceChildren(
        el("h3", {}, "Suggested place"),
        el("ol", { class: "breadcrumbs suggestion" }, data.path.map((p) => el("li", {}, link(nodeHref(p.node), leaf(p.node)), " ", el("small", {}, percent(p.probability))))),
        el("p", { class: "verdict" }, verdict),
        el("h3", {}, "Alternatives"),
        el("ul", {}, others.map((s) => el("li", {}, link(nodeHref(s.category), pathText(s.category)), ` (${percent(s.score)})`))),
        el("h3", {}, "Closest labelled papers"),
        el("ul", {}, data.neighbours.map((n) => el("li", {}, titleLink(n), ` — ${n.categories.map(leaf).join(", ")}`))));
    } catch (err) { out.replaceChildren(el("p", { class: "error" }, err.message)); }
  } },
  el("label", { for: "c-title" }, "Title"), el("input", { id: "c-title", required: true, maxlength: 1000 }),
  el("label", { for: "c-abstract" }, "Abstract"), el("textarea", { id: "c-abstract", rows: 7, required: true, maxlength: 20000 }),
  el("button", { type: "submit" }, "Suggest a category"));
  show(el("h2", {}, "Where does a paper belong?"), form, out);
  say("");
  $("#c-title").focus();
}

// --- one paper ------------------------------------------------------------------------------------
async function paperView(id) {
  const paper = await api(`/api/papers/${encodeURIComponent(id)}`);
  document.title = `${paper.title} — semsearch`;
  const related = el("div", { class: "related-list" });
  const diverse = el("input", { type: "checkbox", id: "diverse", onchange: () => loadRelated() });
  async function loadRelated() {
    related.replaceChildren(el("p", {}, "Loading related work…"));
    try {
      const data = await api(withTaxonomy(`/api/related/${encodeURIComponent(paper.id)}?k=8&details=true${diverse.checked ? "&diverse=true" : ""}`));
      related.replaceChildren(...data.results.map((h) => hitView(h)));
    } catch (err) { related.replaceChildren(el("p", { class: "error" }, err.message)); }
  }
  const confirmed = el("p", { "aria-live": "polite" });
  const current = paper.categories[0] || "";
  const pick = el("select", { name: "category", id: "confirm-category", required: true },
    el("option", { value: "" }, "Choose a category…"),
    (await leafPaths()).map((path) => el("option", { value: path, selected: path === current }, pathText(path))));
  const filedBySurvey = paper.category_source === "survey";
  const confirm = filedBySurvey ? null : el("form", { class: "filters confirm", onsubmit: async (event) => {
    event.preventDefault();
    confirmed.textContent = "Saving…";
    try {
      const saved = await api("/api/labels", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ id: paper.id, category: pick.value }) });
      confirmed.textContent = `Saved as yours: ${pathText(saved.category)}. Later suggestions learn from it.`;
    } catch (err) { confirmed.textContent = err.message; confirmed.className = "error"; }
  } }, el("label", { for: "confirm-category" }, paper.category_source === "user" ? "Change your category" : "Confirm its category"),
  pick, el("button", { type: "submit", class: "secondary" }, "Confirm"));
  const source = { survey: "filed by the survey", user: "confirmed by you", predicted: `predicted, ${percent(paper.confidence)} sure of the area` }[paper.category_source] || "outside the taxonomy";
  show(el("article", { class: "paper" },
    el("h2", { dir: "auto" }, paper.title),
    el("p", { class: "meta" }, dotted([authorsText(paper.authors), paper.year, paper.venue, shownId(paper.id)])),
    el("p", { class: "paper-links" }, Object.entries(paper.links).map(([name, href]) => el("a", { href, rel: "noopener" }, { arxiv: "arXiv", pdf: "PDF", code: "Code", page: "Page" }[name] || name)),
      el("button", { type: "button", class: "link", onclick: () => showBibtex(paper.id) }, "BibTeX"), likeButton(paper.id)),
    paper.abstract ? el("p", { class: "abstract", dir: "auto" }, paper.abstract) : el("p", { class: "meta" }, "No abstract in the index (the survey lists it by title)."),
    el("p", { class: "meta" }, paper.categories.map((c) => chip(c, paper.category_source, surveyNodeHref)), paper.categories.length ? ` ${source}` : source),
    confirm, confirmed,
    el("h3", {}, "Related work"),
    el("label", {}, diverse, " cover more kinds of work (diverse)"),
    related));
  say("");
  await loadRelated();
}

// --- the latest digest ------------------------------------------------------------------------------
async function digestView(params) { // the survey's watch, or the chosen list's (`watch --taxonomy NAME`)
  const kind = chosenTaxonomy() ? `?taxonomy=${encodeURIComponent(chosenTaxonomy())}` : "";
  const { digests } = await api(`/api/digests${kind}`);
  const follow = el("p", {}, feedLink(`/feeds/digests.atom${kind}`, "Follow the digests (Atom feed)"));
  if (!digests.length) {
    show(follow);
    say("No digest yet: run `semsearch watch`, or serve with --watch-every 24h.");
    return;
  }
  const shown = digests.find((d) => d.name === params?.get("name")) || digests[0];
  const digest = await api(`/api/digests/${encodeURIComponent(shown.name)}${kind}`);
  show(el("h2", {}, `New papers, ${digest.window || `${humanStamp(digest.since)} to ${humanStamp(digest.until)}`}`), follow, ...digestEntries(digest.groups));
  say(`${shown.papers} new papers in the ${shown === digests[0] ? "latest " : ""}digest`);
}

// --- the API, documented from its own OpenAPI description (no CDN: nothing but this server) -------------
function schemaText(schema, spec) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.anyOf) return schema.anyOf.map((s) => schemaText(s, spec)).filter((t) => t !== "null").join(" or ");
  if (schema.type === "array") return `list of ${schemaText(schema.items, spec)}`;
  return schema.type || "any";
}

function bodyFields(operation, spec, name) {
  const ref = operation.requestBody?.content?.["application/json"]?.schema?.$ref;
  const model = ref ? spec.components.schemas[ref.split("/").pop()] : null;
  if (!model?.properties) return null;
  return tableBox(`${name} JSON body`, el("table", {}, el("caption", {}, "JSON body"),
    el("thead", {}, el("tr", {}, ["Field", "Type", "Required", "About"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, Object.entries(model.properties).map(([name, field]) => el("tr", {},
      el("td", {}, el("code", {}, name)), el("td", {}, schemaText(field, spec)),
      el("td", {}, (model.required || []).includes(name) ? "yes" : "no"), el("td", {}, field.description || ""))))));
}

// A table wider than a phone scrolls in its own box, by keyboard too, rather than pushing the page sideways.
const tableBox = (name, table) => el("div", { class: "table-box", tabindex: 0, role: "region", "aria-label": name }, table);

async function apiView() {
  const spec = await api("/openapi.json");
  document.title = "The semsearch API";
  const sections = Object.entries(spec.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => {
    const params = (op.parameters || []).filter((p) => p.in !== "header");
    return el("section", { class: "endpoint" },
      el("h3", {}, el("code", {}, `${method.toUpperCase()} ${path}`)),
      op.description || op.summary ? el("p", {}, op.description || op.summary) : null,
      params.length ? tableBox(`${method.toUpperCase()} ${path} parameters`, el("table", {}, el("caption", {}, "Parameters"),
        el("thead", {}, el("tr", {}, ["Name", "In", "Type", "Required", "About"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, params.map((p) => el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in),
          el("td", {}, schemaText(p.schema, spec)), el("td", {}, p.required ? "yes" : "no"),
          el("td", {}, p.description || p.schema?.description || "")))))) : null,
      bodyFields(op, spec, `${method.toUpperCase()} ${path}`));
  }));
  show(el("h2", {}, `The API (${spec.info.title} ${spec.info.version})`),
    el("p", {}, spec.info.description, " Every answer is JSON; every error is ", el("code", {}, '{"error": "..."}'),
      " with a 4xx status. The machine-readable description: ", el("a", { href: "/openapi.json" }, "/openapi.json"), "."),
    ...sections);
  say(`${sections.length} endpoints`);
}

// --- routing ------------------------------------------------------------------------------------------
// What /api/health says is wrong, above every view: answers from an older generation of the index
// (the newest one is damaged, or could not be loaded: what was written since, a label just
// confirmed, is not in them), or a watch that is failing. Nothing when all is well.
async function checkHealth() {
  const notice = $("#notice");
  const health = await api("/api/health", {}, { lasting: true }).catch(() => null);
  const watch = health?.watch;
  const problems = [
    (health?.integrity || health?.reload_error) && `Answers come from an older version of the index: ${health.integrity || health.reload_error}.`,
    ["failing", "dead"].includes(watch?.state) && `The arXiv watch is ${watch.state}${watch.last_error ? `: ${watch.last_error}` : ""}.`,
  ].filter(Boolean);
  notice.textContent = health?.status === "degraded" ? problems.join(" ") || "The server says it is degraded (see /api/health)." : "";
  notice.hidden = !notice.textContent;
}

async function route() {
  checkHealth();
  navigation.abort();
  navigation = new AbortController();
  const params = new URLSearchParams(location.search);
  document.title = "semsearch — efficient LLM literature";
  say("Loading…"); // each view says what it found, or "" once drawn
  view.setAttribute("aria-busy", "true");
  const lastView = view.firstChild;
  try {
    if (location.pathname.startsWith("/paper/")) return await paperView(decodeURIComponent(location.pathname.slice(7)));
    if (location.pathname === "/docs") return await apiView();
    if (params.get("q")) return await resultsView(params);
    $("#q").value = "";
    const views = { taxonomy: taxonomyView, node: nodeView, trends: trendsView, classify: classifyView, digest: digestView, list: listView, liked: likedView };
    return await (views[params.get("view")] || landingView)(params);
  } catch (err) {
    say(err.message, true);
    // Failed before it drew anything: the last view (another paper, a search's results) is not
    // left on show under this URL as if it were the answer.
    if (view.firstChild === lastView) show(el("h2", {}, "Nothing to show"), el("p", { class: "error" }, err.message));
  } finally { view.removeAttribute("aria-busy"); }
}

// After a move to another view the keyboard, and a screen reader, start at its heading: the link
// followed went with the old view, and the focus with it, back to the top of the page. A view that
// places the focus itself (the classify form; the question field, searched from) keeps it.
function landFocus() {
  const active = document.activeElement;
  if (active && active !== document.body && active.isConnected) return;
  const marked = view.querySelector("[data-focus-here]"); // a view may say where the reader goes on
  if (marked) { marked.focus(); return; }
  const heading = view.querySelector("h2, h3");
  if (!heading) return;
  heading.tabIndex = -1;
  heading.focus({ preventScroll: true });
}

function go(href, keepScroll = false) {
  history.pushState(null, "", href);
  route().then(() => { if (!keepScroll) window.scrollTo(0, 0); landFocus(); });
}

document.addEventListener("click", (event) => {
  const anchor = event.target.closest("a[data-route][href]");
  if (!anchor || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  go(anchor.getAttribute("href"), anchor.hasAttribute("data-keep-scroll"));
});
window.addEventListener("popstate", () => route().then(landFocus));
$("#search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const question = $("#q").value.trim();
  const taxonomy = $("#taxonomy").value;
  if (question) go(`/?q=${encodeURIComponent(question)}${taxonomy ? `&taxonomy=${encodeURIComponent(taxonomy)}` : ""}`);
});
$("#copy-bibtex").addEventListener("click", async () => {
  await navigator.clipboard?.writeText($("#bibtex-text").textContent).catch(() => {});
  $("#copy-bibtex").textContent = "Copied";
  setTimeout(() => ($("#copy-bibtex").textContent = "Copy"), 1500);
});
$("#close-bibtex").addEventListener("click", () => $("#bibtex-dialog").close());
$("#taxonomy").addEventListener("change", () => {
  const params = new URLSearchParams(location.search);
  if ($("#taxonomy").value) params.set("taxonomy", $("#taxonomy").value); else params.delete("taxonomy");
  // A category is the other taxonomy's: a node or its trends give way to the chosen one's tree, a
  // search keeps its question without the filter (the survey was asked for a list's node: 400).
  if (params.has("category")) {
    params.delete("category");
    if (["node", "trends"].includes(params.get("view"))) params.set("view", "taxonomy");
  }
  go(`${location.pathname}?${params}`);
});
taxonomyPicker();
route();

/* newsmon desk dashboard.
 *
 * Every page is built from the JSON API with createElement/textContent. Nothing here
 * assigns HTML strings: article, alert and feed text is always a text node, links to
 * articles pass safeHref (http/https only), and the store's search snippet (escaped
 * text with <mark> around matches) is rebuilt node by node by snippetNode().
 */
(function () {
  "use strict";

  var body = document.body;
  var ROOT = body.getAttribute("data-root") || "";
  var PAGE = body.getAttribute("data-page") || "alerts";
  var PARAMS = new URLSearchParams(window.location.search);
  var DESK = PARAMS.get("desk") || "";
  var POLL_MS = 2000;
  var POLL_OVERLAP_MS = 300000;  // re-ask for the last 5 minutes: an alert stamped by a slower clock is not missed
  var MAX_ALERTS_SHOWN = 500;
  var SVG_NS = "http://www.w3.org/2000/svg";
  var META = { desks: [], topics: [], sources: [], languages: [], development_types: [] };
  var TOPIC_NAMES = {};

  // --- DOM helpers ---------------------------------------------------------------------

  function safeHref(value) {
    if (value === null || value === undefined) return null;
    var url;
    try { url = new URL(String(value), window.location.href); } catch (e) { return null; }
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  }

  function setAttrs(el, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "class") el.setAttribute("class", value);
      else if (key === "text") el.textContent = value;
      else if (key.slice(0, 2) === "on") el.addEventListener(key.slice(2), value);
      else if (key === "href") {
        var href = safeHref(value);
        if (href) el.setAttribute("href", href);
      } else el.setAttribute(key, value === true ? "" : String(value));
    });
  }

  function append(el, children) {
    children.forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      if (Array.isArray(child)) { append(el, child); return; }
      el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    });
  }

  function h(tag, attrs) {
    var el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, Array.prototype.slice.call(arguments, 2));
    return el;
  }

  function s(tag, attrs) {
    var el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    append(el, Array.prototype.slice.call(arguments, 2));
    return el;
  }

  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

  var ENTITIES = { amp: "&", lt: "<", gt: ">", quot: "\"", apos: "'" };

  function decodeEntities(text) {
    return text.replace(/&(#[xX][0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, function (whole, name) {
      if (name.charAt(0) === "#") {
        var code = name.charAt(1) === "x" || name.charAt(1) === "X" ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
        return code > 0 && code < 0x110000 ? String.fromCodePoint(code) : whole;
      }
      return Object.prototype.hasOwnProperty.call(ENTITIES, name) ? ENTITIES[name] : whole;
    });
  }

  /* The snippet is HTML-escaped text with <mark>…</mark>: only those two tags become elements. */
  function snippetNode(snippetHtml) {
    var p = h("p", { class: "snippet" });
    var target = p;
    String(snippetHtml || "").split(/(<mark>|<\/mark>)/).forEach(function (part) {
      if (part === "<mark>") { target = h("mark"); p.appendChild(target); }
      else if (part === "</mark>") target = p;
      else if (part) target.appendChild(document.createTextNode(decodeEntities(part)));
    });
    return p;
  }

  // --- URLs, API, formatting -------------------------------------------------------------

  function pageUrl(path, extra) {
    var q = new URLSearchParams();
    if (DESK) q.set("desk", DESK);
    Object.keys(extra || {}).forEach(function (k) { if (extra[k]) q.set(k, extra[k]); });
    var qs = q.toString();
    return ROOT + path + (qs ? "?" + qs : "");
  }

  function storyUrl(storyId) { return pageUrl("/stories/" + encodeURIComponent(storyId)); }
  function eventUrl(eventId) { return pageUrl("/events/" + encodeURIComponent(eventId)); }

  function api(path, query) {
    var q = new URLSearchParams();
    Object.keys(query || {}).forEach(function (k) {
      var v = query[k];
      if (v !== null && v !== undefined && v !== "") q.set(k, v);
    });
    var qs = q.toString();
    return fetch(ROOT + "/api/" + path + (qs ? "?" + qs : ""), {
      headers: { Accept: "application/json" }, credentials: "same-origin"
    }).then(function (resp) {
      if (resp.ok) return resp.json();
      return resp.json().catch(function () { return {}; }).then(function (data) {
        var detail = data && data.detail;
        if (detail && typeof detail !== "string") detail = JSON.stringify(detail);
        throw new Error(detail || resp.status + " " + resp.statusText);
      });
    });
  }

  function showError(err) {
    var banner = document.getElementById("banner");
    banner.textContent = "Could not load: " + (err && err.message ? err.message : String(err));
    banner.hidden = false;
  }

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  function parseTime(iso) { if (!iso) return null; var d = new Date(iso); return isNaN(d.getTime()) ? null : d; }
  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function fmtDate(iso) {
    var d = parseTime(iso);
    return d ? d.getUTCDate() + " " + MONTHS[d.getUTCMonth()] + " " + d.getUTCFullYear() : (iso || "—");
  }
  function fmtClock(iso) { var d = parseTime(iso); return d ? pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) : ""; }
  function fmtTime(iso) { var d = parseTime(iso); return d ? fmtDate(iso) + " " + fmtClock(iso) + " UTC" : (iso || "—"); }
  function ago(iso) {
    var d = parseTime(iso);
    if (!d) return "never";
    var sec = Math.round((Date.now() - d.getTime()) / 1000);
    if (sec < 0) sec = 0;
    if (sec < 60) return sec + " s ago";
    if (sec < 3600) return Math.round(sec / 60) + " min ago";
    if (sec < 172800) return Math.round(sec / 3600) + " h ago";
    return Math.round(sec / 86400) + " d ago";
  }
  function timeEl(iso, text) { return h("time", { datetime: iso || null, title: iso ? fmtTime(iso) : null }, text); }

  function family(devType) { return devType && devType.indexOf("ceasefire") === 0 ? "ceasefire" : "talks"; }
  function devBadge(devType) {
    return devType ? h("span", { class: "badge dev-" + family(devType), title: "development" }, devType.replace(/-/g, " ")) : null;
  }
  function humanType(devType) { return String(devType || "").replace(/-/g, " "); }
  /* The server's desk-local times read "2025-11-12 08:19 PKT": [date, clock, zone]. */
  function localParts(text) { var p = String(text || "").split(" "); return { date: p[0] || "", clock: p[1] || "", zone: p.slice(2).join(" ") }; }
  function statusBadge(status, label) {
    return status ? h("span", { class: "badge ev-status st-" + status, title: "event status" }, label || status) : null;
  }
  function kindBadge(alert) {
    var label = alert.kind === "escalation" && alert.escalation ? "escalation · " + alert.escalation.replace(":", " ") : alert.kind;
    return h("span", { class: "badge kind kind-" + alert.kind, title: "alert kind" }, label);
  }
  function transition(family_, before, after) {
    return (family_ ? family_ + ": " : "") + (before || "none") + " → " + (after || "?");
  }
  function linkOrText(url, text, cls) {
    var href = safeHref(url);
    return href ? h("a", { class: cls || null, href: href, target: "_blank", rel: "noopener noreferrer", dir: "auto" }, text)
      : h("span", { class: cls || null, dir: "auto" }, text);
  }
  function deskBadge(desk) { return desk ? h("span", { class: "badge desk", title: "desk" }, desk) : null; }
  function langBadge(lang) { return lang ? h("span", { class: "badge lang", title: "language" }, lang) : null; }
  function topicChip(id) { return h("span", { class: "chip", title: id }, TOPIC_NAMES[id] || id); }
  function topicChips(ids, max) {
    var shown = max ? ids.slice(0, max) : ids;
    var rest = ids.slice(shown.length);
    return h("div", { class: "chips" }, shown.map(topicChip),
      rest.length ? h("span", { class: "chip more-chip", title: rest.map(function (id) { return TOPIC_NAMES[id] || id; }).join(", ") }, "+" + rest.length) : null);
  }
  function extLink(url, label) {
    var href = safeHref(url);
    if (!href) return null;
    return h("a", { class: "ext", href: href, target: "_blank", rel: "noopener noreferrer" }, label || "original ↗");
  }
  function panel(title, right) {
    var head = h("div", { class: "panel-head" }, typeof title === "string" ? h("h2", null, title) : title);
    if (right) head.appendChild(h("span", { class: "right" }, right));
    return h("section", { class: "panel" }, head);
  }
  function empty(text) { return h("p", { class: "empty" }, text); }
  function pageHead(title, sub) {
    return h("div", { class: "page-head" }, h("h1", null, title), sub ? h("span", { class: "sub" }, sub) : null);
  }
  function deskNote() { return DESK ? "desk: " + DESK : "all desks"; }

  // --- common: desk filter and footer ------------------------------------------------------

  function setupChrome(meta) {
    var select = document.getElementById("desk-filter");
    var desks = meta.desks.map(function (d) { return d.id; });
    if (DESK && desks.indexOf(DESK) < 0) desks.push(DESK);
    desks.forEach(function (id) {
      var opt = h("option", { value: id }, id);
      if (id === DESK) opt.selected = true;
      select.appendChild(opt);
    });
    select.addEventListener("change", function () {
      var q = new URLSearchParams(window.location.search);
      if (select.value) q.set("desk", select.value); else q.delete("desk");
      q.delete("offset");
      var qs = q.toString();
      window.location.assign(window.location.pathname + (qs ? "?" + qs : ""));
    });
    var footer = document.getElementById("footer-store");
    footer.textContent = "store: " + meta.store + " · " + meta.articles + " articles" +
      (meta.config_error ? " · config problem: " + meta.config_error : "");
  }

  // --- alerts (live) ----------------------------------------------------------------------

  function alertItem(alert, fresh) {
    var fam = alert.development ? family(alert.development) : "none";
    var created = localParts(alert.created_local);
    var ev = alert.event;
    var times = [];
    if (alert.published_local) times.push("published " + alert.published_local);
    if (alert.first_seen_local) times.push("first seen " + alert.first_seen_local);
    return h("li", { class: "alert fam-" + fam + (fresh ? " fresh" : ""), "data-alert-id": alert.id, "data-kind": alert.kind },
      h("div", { class: "when", title: alert.timezone },
        h("strong", null, created.clock || fmtClock(alert.created)), created.date ? created.date + " " + created.zone : fmtDate(alert.created)),
      h("div", null,
        h("div", { class: "title-row" },
          deskBadge(alert.desk), kindBadge(alert), devBadge(alert.development),
          h("a", { class: "title", dir: "auto", href: storyUrl(alert.story_id) }, alert.title)),
        ev ? h("div", { class: "reach" },
          statusBadge(ev.status, ev.status_label),
          h("span", { class: "transition" }, transition(ev.family, ev.state_before, ev.state_after)),
          h("span", { class: "reach-text" }, ev.reach),
          h("a", { class: "event-link", href: eventUrl(ev.id) }, "event →")) : null,
        times.length ? h("div", { class: "times" }, times.join(" · ")) : null,
        h("div", { class: "meta" },
          h("span", null, alert.source), h("span", { class: "sep" }),
          h("span", { class: "mono rules", title: "rules folded into this alert" }, (alert.rules.length > 1 ? "rules " : "rule ") + alert.rules.join(", ")),
          alert.copies > 1 ? h("span", null, "× " + alert.copies) : null,
          extLink(alert.url)),
        h("div", { class: "why", title: alert.matched }, alert.matched),
        topicChips(alert.topics, 4)));
  }

  /* The latest-developments side panel: one line per event (the timeline's rows). */
  function developmentsList(data) {
    if (!data.entries.length) return empty("No developments recorded.");
    return h("ul", { class: "mini", id: "latest-developments" }, data.entries.map(function (e) {
      var first = e.first_report || {};
      return h("li", { "data-event-id": e.id },
        h("div", { class: "top" }, devBadge(e.type), statusBadge(e.status, e.status_label),
          h("span", { class: "muted small" }, e.opened_local || fmtDate(e.opened))),
        h("a", { dir: "auto", href: eventUrl(e.id) }, e.evidence || first.title || humanType(e.type)),
        h("div", { class: "muted small" }, e.reach));
    }));
  }

  /* The feed-health side panel: counts per status and the feeds needing attention. */
  function feedSummary(data) {
    var box = h("div", { id: "feed-summary" });
    if (!data.feeds.length) { box.appendChild(empty("No feeds configured or polled.")); return box; }
    var counts = {};
    data.feeds.forEach(function (f) { counts[f.status] = (counts[f.status] || 0) + 1; });
    box.appendChild(h("div", { class: "summary-chips panel-body" }, Object.keys(counts).map(function (st) {
      return h("span", { class: "status " + st, "data-status": st }, counts[st] + " " + st);
    })));
    var bad = data.feeds.filter(function (f) { return f.status === "failing" || f.status === "stale" || f.status === "warning"; });
    if (bad.length) {
      box.appendChild(h("ul", { class: "mini" }, bad.slice(0, 5).map(function (f) {
        return h("li", { "data-feed-id": f.feed_id }, h("div", { class: "top" }, h("span", { class: "status " + f.status }, f.status), h("strong", null, f.feed_id)),
          f.last_error ? h("div", { class: "error-text" }, f.last_error) : h("div", { class: "muted small" }, "last success " + ago(f.last_success)));
      })));
    }
    return box;
  }

  /* A side panel the alert poll keeps fresh: on every poll it asks its API again and redraws only
     when the answer changed. A failed refresh keeps what is shown (the live badge says offline). */
  function livePanel(holder, path, query, draw) {
    var last = null;
    return function refresh(initial) {
      return api(path, query).then(function (data) {
        var key = JSON.stringify(data);
        if (key === last) return;
        last = key;
        clear(holder).appendChild(draw(data));
        holder.setAttribute("data-refreshed", String(Date.now()));
      }, function (err) { if (initial) showError(err); });
    };
  }

  function renderAlerts(main) {
    var list = h("ol", { class: "alert-list", id: "alert-list", "aria-live": "polite" });
    var live = h("span", { class: "live", id: "live-status" }, h("span", { class: "dot" }), h("span", { class: "txt" }, "connecting…"));
    var count = h("span", { class: "muted small", id: "alert-count" });
    var alertsPanel = panel(h("h1", null, "Live alerts"), null);
    alertsPanel.firstChild.appendChild(count);
    alertsPanel.firstChild.appendChild(h("span", { class: "right" }, live));
    var placeholder = empty("Loading alerts…");
    alertsPanel.appendChild(placeholder);
    alertsPanel.appendChild(list);

    var devPanel = panel("Latest developments", h("a", { href: pageUrl("/timeline") }, "Timeline →"));
    var feedPanel = panel("Feed health", h("a", { href: pageUrl("/feeds") }, "All feeds →"));
    append(main, [h("div", { class: "grid-main" }, alertsPanel, h("div", null, devPanel, feedPanel))]);

    var seen = {};
    var newest = null;
    var total = 0;
    var unseen = 0;
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) { unseen = 0; document.title = document.title.replace(/^\(\d+\) /, ""); }
    });

    function poll(initial) {
      var since = null;
      if (!initial && newest) since = new Date(parseTime(newest).getTime() - POLL_OVERLAP_MS).toISOString().slice(0, 19) + "Z";
      return api("alerts", { desk: DESK, since: since, limit: initial ? 100 : 500 }).then(function (data) {
        var fresh = data.alerts.filter(function (a) { return !seen[a.id]; });
        fresh.slice().reverse().forEach(function (a) {  // the API is newest first; prepend oldest first
          seen[a.id] = true;
          total += 1;
          if (!newest || a.created > newest) newest = a.created;
          list.insertBefore(alertItem(a, !initial), list.firstChild);
        });
        while (list.childNodes.length > MAX_ALERTS_SHOWN) list.removeChild(list.lastChild);
        if (!initial && fresh.length && document.hidden) {
          unseen += fresh.length;
          document.title = "(" + unseen + ") " + document.title.replace(/^\(\d+\) /, "");
        }
        placeholder.textContent = DESK ? "No alerts for the " + DESK + " desk yet." : "No alerts yet.";
        placeholder.hidden = total > 0;
        count.textContent = total + (total === 1 ? " alert" : " alerts") + " · " + deskNote();
        live.className = "live";
        live.lastChild.textContent = "Live · checked " + fmtClock(data.server_time) + ":" + pad(new Date(data.server_time).getUTCSeconds()) + " UTC";
      }, function (err) {
        live.className = "live offline";
        live.lastChild.textContent = "Offline · retrying (" + err.message + ")";
      });
    }

    var devBody = h("div", { id: "developments-panel" });
    var feedBody = h("div", { id: "feeds-panel" });
    devPanel.appendChild(devBody);
    feedPanel.appendChild(feedBody);
    // One poll loop for the page: each tick refreshes the alerts and the side panels together, and the
    // next tick starts POLL_MS after all of them answered.
    var refreshers = [
      poll,
      livePanel(devBody, "timeline", { desk: DESK, limit: 6 }, developmentsList),
      livePanel(feedBody, "feeds", { desk: DESK }, feedSummary)
    ];
    function tick(initial) { return Promise.all(refreshers.map(function (refresh) { return refresh(initial); })); }
    function loop() { tick(false).then(function () { window.setTimeout(loop, POLL_MS); }); }
    return tick(true).then(function () { window.setTimeout(loop, POLL_MS); });
  }

  // --- search -----------------------------------------------------------------------------

  function selectField(label, name, choices, value, allLabel) {
    var select = h("select", { name: name, id: "f-" + name }, h("option", { value: "" }, allLabel));
    var ids = choices.map(function (c) { return c.id; });
    if (value && ids.indexOf(value) < 0) choices = choices.concat([{ id: value }]);
    choices.forEach(function (c) {
      var opt = h("option", { value: c.id }, c.name ? c.name : c.id + (c.count ? " (" + c.count + ")" : ""));
      if (c.id === value) opt.selected = true;
      select.appendChild(opt);
    });
    return h("label", { class: "field" }, label, select);
  }

  function inputField(label, name, type, value, placeholder) {
    return h("label", { class: "field" }, label,
      h("input", { type: type, name: name, id: "f-" + name, value: value || "", placeholder: placeholder || null }));
  }

  function nextDay(date) {
    var d = parseTime(date + "T00:00:00Z");
    if (!d) return date;
    return new Date(d.getTime() + 86400000).toISOString().slice(0, 10);
  }

  var COLLAPSE_CHOICES = [{ id: "story", name: "One per story" }, { id: "event", name: "One per event" }];

  function resultItem(hit) {
    var a = hit.article;
    return h("article", { class: "result", "data-article-id": a.id },
      h("h3", { dir: "auto" }, h("a", { href: storyUrl(a.story_id) }, a.title || "(untitled)")),
      h("div", { class: "meta" },
        h("strong", null, a.source), timeEl(a.event_time, fmtTime(a.event_time)),
        deskBadge(a.desk), langBadge(a.language), devBadge(a.development && a.development.type)),
      snippetNode(hit.snippet_html),
      h("div", { class: "chips" }, topicChips(a.topics, 5),
        a.event_id ? h("a", { class: "event-link", href: eventUrl(a.event_id) }, "event →") : null, extLink(a.url)));
  }

  function renderSearch(main) {
    var form = h("form", { class: "search-form", role: "search", id: "search-form" });
    var resultsPanel = h("section", { class: "panel" });
    var info = h("div", { class: "results-info", id: "results-info" });
    var results = h("div", { id: "results" });
    var more = h("div", { class: "more" });
    append(resultsPanel, [results, more]);
    append(main, [pageHead("Search", deskNote()), h("section", { class: "panel" }, form), info, resultsPanel]);

    function state() {
      var q = new URLSearchParams(window.location.search);
      return {
        q: q.get("q") || "", topic: q.get("topic") || "", source: q.get("source") || "",
        language: q.get("language") || "", since: q.get("since") || "", until: q.get("until") || "",
        collapse: q.get("collapse") || ""
      };
    }

    function buildForm(st) {
      clear(form);
      append(form, [
        inputField("Words", "q", "search", st.q, "ceasefire, \"Istanbul talks\", title:Torkham …"),
        selectField("Topic", "topic", META.topics, st.topic, "All topics"),
        selectField("Source", "source", META.sources, st.source, "All sources"),
        selectField("Language", "language", META.languages, st.language, "All languages"),
        inputField("From", "since", "date", st.since),
        inputField("To", "until", "date", st.until),
        selectField("Group", "collapse", COLLAPSE_CHOICES, st.collapse, "Every article"),
        h("div", { class: "buttons" },
          h("button", { type: "submit", class: "primary" }, "Search"),
          h("button", { type: "button", onclick: function () { go({}); } }, "Clear"))
      ]);
    }

    function go(st) {
      var q = new URLSearchParams();
      if (DESK) q.set("desk", DESK);
      Object.keys(st).forEach(function (k) { if (st[k]) q.set(k, st[k]); });
      var qs = q.toString();
      window.history.pushState(null, "", window.location.pathname + (qs ? "?" + qs : ""));
      run();
    }

    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var data = new FormData(form);
      var st = {};
      ["q", "topic", "source", "language", "since", "until", "collapse"].forEach(function (k) { st[k] = String(data.get(k) || "").trim(); });
      go(st);
    });

    var offset = 0;
    var PAGE_SIZE = 20;
    function fetchPage(st, append_) {
      return api("search", {
        q: st.q, topic: st.topic, desk: DESK, source: st.source, language: st.language,
        since: st.since, until: st.until ? nextDay(st.until) : "", collapse: st.collapse, limit: PAGE_SIZE, offset: offset
      }).then(function (data) {
        if (!append_) clear(results);
        data.hits.forEach(function (hit) { results.appendChild(resultItem(hit)); });
        var shown = results.childNodes.length;
        info.textContent = shown === 0 ? "No articles match." :
          (st.q ? shown + (data.hits.length === PAGE_SIZE ? "+" : "") + (shown === 1 ? " result" : " results") + " for “" + st.q + "”, best first" :
            "Newest " + shown + " articles" ) + (data.collapse ? " · one per " + data.collapse : "") + " · " + deskNote();
        if (shown === 0) results.appendChild(empty("Nothing found. Try fewer words or filters."));
        clear(more);
        if (data.hits.length === PAGE_SIZE) {
          more.appendChild(h("button", { type: "button", onclick: function () { offset += PAGE_SIZE; fetchPage(st, true); } }, "More results"));
        }
      });
    }

    function run() {
      var st = state();
      buildForm(st);
      offset = 0;
      info.textContent = "Searching…";
      return fetchPage(st, false).catch(function (err) { info.textContent = ""; showError(err); });
    }

    window.addEventListener("popstate", run);
    return run();
  }

  // --- stories ----------------------------------------------------------------------------

  function renderStories(main) {
    var topic = PARAMS.get("topic") || "";
    var bar = h("div", { class: "toolbar" }, selectField("Topic", "topic", META.topics, topic, "All topics"));
    bar.querySelector("select").addEventListener("change", function (ev) {
      window.location.assign(pageUrl("/stories", { topic: ev.target.value }));
    });
    var table = h("table", { class: "grid", id: "stories" },
      h("thead", null, h("tr", null, h("th", null, "Story"), h("th", { class: "num" }, "Copies"), h("th", null, "Sources"),
        h("th", null, "First published"), h("th", null, "Latest"), h("th", null, "Developments"))));
    var tbody = h("tbody");
    table.appendChild(tbody);
    var box = h("section", { class: "panel" }, bar, table);
    append(main, [pageHead("Stories", "near-duplicate copies grouped · " + deskNote()), box]);
    return api("stories", { desk: DESK, topic: topic, limit: 100 }).then(function (data) {
      if (!data.stories.length) { box.appendChild(empty("No stories stored yet.")); return; }
      data.stories.forEach(function (st) {
        tbody.appendChild(h("tr", null,
          h("td", null, h("a", { dir: "auto", href: storyUrl(st.id) }, st.title || st.id), topicChips(st.topics, 4)),
          h("td", { class: "num" }, String(st.copies)),
          h("td", null, st.sources.join(", ")),
          h("td", { class: "nowrap" }, timeEl(st.first_published, fmtTime(st.first_published))),
          h("td", { class: "nowrap" }, timeEl(st.latest, fmtDate(st.latest))),
          h("td", null, h("div", { class: "chips" }, st.developments.map(devBadge)))));
      });
    });
  }

  function fact(label, value) {
    return h("div", { class: "fact" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
  }

  function renderStory(main) {
    var storyId = body.getAttribute("data-story");
    return api("stories/" + encodeURIComponent(storyId)).then(function (st) {
      var lead = st.lead;
      document.title = (st.title || "Story") + " · newsmon";
      append(main, [
        h("div", { class: "page-head" }, h("a", { href: pageUrl("/stories") }, "← Stories")),
        h("div", { class: "page-head" }, h("h1", { id: "story-title", dir: "auto" }, st.title || st.id)),
        h("section", { class: "panel" },
          h("div", { class: "facts" },
            fact("First seen by newsmon", timeEl(st.first_seen, fmtTime(st.first_seen))),
            fact("First published", lead ? timeEl(lead.event_time, fmtTime(lead.event_time)) : "—"),
            fact("Copies", String(st.copies)),
            fact("Sources", st.sources.join(", ") || "—"),
            fact("Developments", st.developments.length ? h("div", { class: "chips" }, st.developments.map(devBadge)) : "none")),
          lead ? h("div", { class: "panel-body" },
            h("div", { class: "chips" }, lead.topics.map(topicChip)),
            lead.places.length ? h("div", { class: "meta" }, "Places: " + lead.places.map(function (p) { return p.name; }).join(", ")) : null,
            lead.entities.length ? h("div", { class: "meta" }, "Named: " + lead.entities.map(function (e) { return e.name; }).join(", ")) : null,
            lead.development ? h("blockquote", { class: "small" }, lead.development.evidence) : null) : null),
        (function () {
          var p = panel("All copies (" + st.articles.length + ")");
          var table = h("table", { class: "grid", id: "copies" },
            h("thead", null, h("tr", null, h("th", null, "Published"), h("th", null, "Source"), h("th", null, "Headline"),
              h("th", null, "Desk"), h("th", null, "Lang"), h("th", null, "Development"), h("th", null, "Feed"))),
            h("tbody", null, st.articles.map(function (a) {
              return h("tr", { "data-article-id": a.id },
                h("td", { class: "nowrap" }, timeEl(a.event_time, fmtTime(a.event_time))),
                h("td", null, a.source),
                h("td", { dir: "auto" }, a.title, " ", extLink(a.url, "↗")),
                h("td", null, deskBadge(a.desk)), h("td", null, langBadge(a.language)),
                h("td", null, devBadge(a.development && a.development.type)),
                h("td", { class: "mono" }, a.feed_id));
            })));
          p.appendChild(table);
          if (st.missing_articles.length) p.appendChild(h("p", { class: "muted small panel-body" }, st.missing_articles.length + " copies no longer stored."));
          return p;
        })(),
        lead ? h("section", { class: "panel" }, h("details", null, h("summary", null, "Text of the first copy"),
          h("div", { class: "panel-body article-text" }, lead.text))) : null
      ]);
    });
  }

  // --- timeline ---------------------------------------------------------------------------

  function renderTimeline(main) {
    var fam = PARAMS.get("family") || "";
    var seg = h("div", { class: "seg", role: "group", "aria-label": "Development family" },
      [["", "All"], ["ceasefire", "Ceasefire"], ["talks", "Talks"]].map(function (opt) {
        return h("a", { href: pageUrl("/timeline", { family: opt[0] }), class: opt[0] === fam ? "on" : null }, opt[1]);
      }));
    var box = h("section", { class: "panel" }, h("div", { class: "toolbar" }, seg));
    var sub = h("span", { class: "sub" });
    append(main, [h("div", { class: "page-head" }, h("h1", null, "Development timeline"), sub), box]);
    return api("timeline", { desk: DESK, family: fam }).then(function (data) {
      sub.textContent = "one row per development event, however many outlets reported it, newest first · times " +
        data.timezone + " · " + (DESK ? "events notified to the " + DESK + " desk" : "all desks");
      if (!data.entries.length) { box.appendChild(empty("No developments recorded.")); return; }
      var list = h("ol", { class: "tl", id: "timeline" });
      var day = null;
      data.entries.forEach(function (e) {
        var opened = localParts(e.opened_local);
        var d = opened.date ? fmtDate(opened.date) : fmtDate(e.opened);
        if (d !== day) { day = d; list.appendChild(h("li", { class: "tl-day" }, d)); }
        var first = e.first_report;
        list.appendChild(h("li", { class: "tl-item fam-" + e.family, "data-event-id": e.id },
          h("div", { class: "t" }, timeEl(e.opened, opened.clock ? opened.clock + " " + opened.zone : fmtClock(e.opened) + " UTC")),
          h("div", { class: "rail" }),
          h("div", null,
            h("div", { class: "what" }, devBadge(e.type), statusBadge(e.status, e.status_label),
              h("a", { class: "event-link", href: eventUrl(e.id) }, h("strong", { class: "transition" }, transition(e.family, e.state_before, e.state_after)))),
            first ? h("div", { class: "meta first-report" }, "first reported by ", h("strong", null, first.outlet),
              " at " + (first.time_local || fmtTime(first.time)), extLink(first.url)) : null,
            h("div", { class: "meta" }, h("span", { class: "count-pill outlets", title: e.outlets.join(", ") }, String(e.outlet_count)),
              e.outlet_count === 1 ? " outlet" : " outlets", e.outlets.length > 1 ? h("span", { class: "muted small" }, e.outlets.join(", ")) : null),
            e.evidence ? h("blockquote", { dir: "auto" }, e.evidence) : null)));
      });
      box.appendChild(list);
      if (data.truncated) box.appendChild(h("p", { class: "muted small panel-body" }, "Older events beyond the scanned ones are not shown."));
    });
  }

  // --- one development event ---------------------------------------------------------------

  function names(items) { return items.length ? items.map(function (p) { return p.name; }).join(", ") : "—"; }

  function renderEvent(main) {
    var eventId = body.getAttribute("data-event");
    var back = h("div", { class: "page-head" }, h("a", { href: pageUrl("/timeline") }, "← Timeline"));
    return api("events/" + encodeURIComponent(eventId), { desk: DESK }).then(function (ev) {
      document.title = humanType(ev.type) + " · newsmon";
      var first = ev.first_report;
      append(main, [
        back,
        h("div", { class: "page-head" }, h("h1", { id: "event-title" }, humanType(ev.type)),
          statusBadge(ev.status, ev.status_label), h("span", { class: "sub" }, "times " + ev.timezone)),
        h("section", { class: "panel", id: "event-facts" },
          h("div", { class: "facts" },
            fact("Status", h("span", { id: "event-status" }, ev.status_label)),
            fact("State change", h("span", { id: "event-transition" }, transition(ev.family, ev.state_before, ev.state_after))),
            fact("First reported", first ? h("span", null, first.outlet + " at " + (first.time_local || fmtTime(first.time))) : "—"),
            fact("Outlets", h("span", { id: "event-outlets", title: ev.outlets.join(", ") }, String(ev.outlet_count))),
            fact("Reports", String(ev.report_count)),
            fact("Venue", ev.venue ? ev.venue.name : "—"),
            fact("Places", names(ev.places)),
            fact("Parties", names(ev.parties)),
            fact("Confidence", Math.round(ev.confidence * 100) + "%"),
            fact("Notified", ev.desks.length ? h("div", { class: "chips" }, ev.desks.map(deskBadge)) : "no desk")),
          h("div", { class: "panel-body" },
            ev.evidence ? h("blockquote", { dir: "auto" }, ev.evidence) : null,
            h("div", { class: "muted small" }, ev.reach, " · last report " + (ev.updated_local || fmtTime(ev.updated))),
            ev.superseded_by ? h("div", { class: "meta" }, "Superseded by ", h("a", { href: eventUrl(ev.superseded_by), id: "superseded-by" }, "a later event →")) : null)),
        (function () {
          var p = panel("Every report (" + ev.reports.length + ")");
          p.appendChild(h("table", { class: "grid", id: "reports" },
            h("thead", null, h("tr", null, h("th", null, "Time"), h("th", null, "Outlet"), h("th", null, "Lang"), h("th", null, "Mode"),
              h("th", null, "Headline"), h("th", null, "Evidence"))),
            h("tbody", null, ev.reports.map(function (r) {
              return h("tr", { "data-article-id": r.article_id, "data-mode": r.mode },
                h("td", { class: "nowrap" }, timeEl(r.time, r.time_local || fmtTime(r.time)),
                  r.first_seen_local ? h("div", { class: "muted small" }, "seen " + r.first_seen_local) : null),
                h("td", null, h("strong", null, r.outlet)),
                h("td", null, langBadge(r.language)),
                h("td", null, h("span", { class: "badge mode mode-" + r.mode }, r.mode)),
                h("td", null, linkOrText(r.url, r.title || r.url, "report-title"),
                  r.story_id ? h("div", { class: "small" }, h("a", { href: storyUrl(r.story_id) }, "story →")) : null),
                h("td", { class: "evidence", dir: "auto" }, r.evidence));
            }))));
          return p;
        })()
      ]);
    }, function (err) {
      append(main, [back, h("section", { class: "panel" }, h("p", { class: "empty", id: "event-missing" }, "No such event: " + err.message))]);
    });
  }

  // --- topic volume chart -----------------------------------------------------------------

  var PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#2f4b7c", "#bab0ac", "#86bcb6"];

  function niceMax(v) {
    if (v <= 5) return 5;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }

  function drawVolume(holder, data, hidden) {
    clear(holder);
    var series = data.series.filter(function (sr) { return !hidden[sr.topic]; });
    var n = data.buckets.length;
    var W = 960, H = 320, L = 40, R = 12, T = 12, B = 34;
    var totals = data.buckets.map(function (_, i) { return series.reduce(function (acc, sr) { return acc + sr.counts[i]; }, 0); });
    var max = niceMax(Math.max.apply(null, [1].concat(totals)));
    var plotW = W - L - R, plotH = H - T - B;
    var step = plotW / Math.max(n, 1);
    var barW = Math.max(1, Math.min(48, step * 0.78));
    var svg = s("svg", { class: "chart", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Articles per topic per " + data.bucket, id: "volume-chart" });
    for (var k = 0; k <= 5; k++) {
      var val = max * k / 5;
      var y = T + plotH - plotH * k / 5;
      svg.appendChild(s("line", { class: k === 0 ? "axis" : "gridline", x1: L, x2: W - R, y1: y, y2: y }));
      svg.appendChild(s("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, String(Math.round(val * 10) / 10)));
    }
    var labelEvery = Math.max(1, Math.ceil(n / 12));
    data.buckets.forEach(function (bucket, i) {
      var x = L + step * i + (step - barW) / 2;
      var base = T + plotH;
      series.forEach(function (sr) {
        var c = sr.counts[i];
        if (!c) return;
        var hgt = plotH * c / max;
        base -= hgt;
        svg.appendChild(s("rect", { class: "bar", x: x, y: base, width: barW, height: hgt, fill: colorOf(data, sr.topic) },
          s("title", null, sr.name + " — " + c + " article" + (c === 1 ? "" : "s") + ", " +
            (data.bucket === "hour" ? fmtTime(bucket) : fmtDate(bucket)))));
      });
      if (i % labelEvery === 0) {
        var d = parseTime(bucket);
        var label = data.bucket === "hour" ? pad(d.getUTCHours()) + ":00" : d.getUTCDate() + " " + MONTHS[d.getUTCMonth()];
        svg.appendChild(s("text", { x: L + step * i + step / 2, y: H - B + 16, "text-anchor": "middle" }, label));
        if (data.bucket === "hour" && (i === 0 || d.getUTCHours() < labelEvery)) {
          svg.appendChild(s("text", { x: L + step * i + step / 2, y: H - B + 29, "text-anchor": "middle" }, fmtDate(bucket)));
        }
      }
    });
    holder.appendChild(svg);
  }

  function colorOf(data, topic) {
    var idx = data.series.map(function (sr) { return sr.topic; }).indexOf(topic);
    return PALETTE[idx % PALETTE.length];
  }

  function renderTopics(main) {
    var bucket = PARAMS.get("bucket") || "auto";
    var since = PARAMS.get("since") || "", until = PARAMS.get("until") || "";
    var form = h("form", { class: "toolbar", id: "volume-form" },
      selectField("Buckets", "bucket", [{ id: "hour", name: "Hours" }, { id: "day", name: "Days" }], bucket === "auto" ? "" : bucket, "Automatic"),
      inputField("From", "since", "date", since), inputField("To", "until", "date", until),
      h("button", { type: "submit", class: "primary" }, "Show"));
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var fd = new FormData(form);
      window.location.assign(pageUrl("/topics", { bucket: fd.get("bucket"), since: fd.get("since"), until: fd.get("until") }));
    });
    var holder = h("div", { class: "panel-body" });
    var legend = h("div", { class: "legend", id: "volume-legend" });
    var box = h("section", { class: "panel" }, form, holder, legend);
    append(main, [pageHead("Topic volume", "articles per topic over time (by published time) · " + deskNote()), box]);
    return api("topics/volume", { desk: DESK, bucket: bucket, since: since, until: until ? nextDay(until) : "" }).then(function (data) {
      if (!data.buckets.length) { holder.appendChild(empty("No tagged articles in this range.")); return; }
      var hidden = {};
      drawVolume(holder, data, hidden);
      data.series.forEach(function (sr) {
        var btn = h("button", { type: "button", "aria-pressed": "true", title: "Show or hide " + sr.name },
          s("svg", { viewBox: "0 0 10 10", "aria-hidden": "true" }, s("rect", { width: 10, height: 10, rx: 2, fill: colorOf(data, sr.topic) })),
          sr.name, h("span", { class: "n" }, String(sr.total)));
        btn.addEventListener("click", function () {
          hidden[sr.topic] = !hidden[sr.topic];
          btn.classList.toggle("off", !!hidden[sr.topic]);
          btn.setAttribute("aria-pressed", hidden[sr.topic] ? "false" : "true");
          drawVolume(holder, data, hidden);
        });
        legend.appendChild(btn);
      });
      if (data.truncated) box.appendChild(h("p", { class: "muted small panel-body" }, "Counted over the newest scanned articles only."));
    });
  }

  // --- map --------------------------------------------------------------------------------

  /* Country outlines from Natural Earth 1:110m (public domain), lon/lat. */
  var OUTLINES = {
    AFGHANISTAN: [[61.21, 35.65], [62.23, 35.27], [62.98, 35.4], [63.19, 35.86], [63.98, 36.01], [64.55, 36.31], [64.75, 37.11],
      [65.59, 37.31], [65.75, 37.66], [66.22, 37.39], [66.52, 37.36], [67.08, 37.36], [67.83, 37.14], [68.14, 37.02], [68.86, 37.34],
      [69.2, 37.15], [69.52, 37.61], [70.12, 37.59], [70.27, 37.74], [70.38, 38.14], [70.81, 38.49], [71.35, 38.26], [71.24, 37.95],
      [71.54, 37.91], [71.45, 37.07], [71.84, 36.74], [72.19, 36.95], [72.64, 37.05], [73.26, 37.5], [73.95, 37.42], [74.98, 37.42],
      [75.16, 37.13], [74.58, 37.02], [74.07, 36.84], [72.92, 36.72], [71.85, 36.51], [71.26, 36.07], [71.5, 35.65], [71.61, 35.15],
      [71.12, 34.73], [71.16, 34.35], [70.88, 33.99], [69.93, 34.02], [70.32, 33.36], [69.69, 33.11], [69.26, 32.5], [69.32, 31.9],
      [68.93, 31.62], [68.56, 31.71], [67.79, 31.58], [67.68, 31.3], [66.94, 31.3], [66.38, 30.74], [66.35, 29.89], [65.05, 29.47],
      [64.35, 29.56], [64.15, 29.34], [63.55, 29.47], [62.55, 29.32], [60.87, 29.83], [61.78, 30.74], [61.7, 31.38], [60.94, 31.55],
      [60.86, 32.18], [60.54, 32.98], [60.96, 33.53], [60.53, 33.68], [60.8, 34.4], [61.21, 35.65]],
    PAKISTAN: [[75.16, 37.13], [75.9, 36.67], [76.19, 35.9], [77.84, 35.49], [76.87, 34.65], [75.76, 34.5], [74.24, 34.75], [73.75, 34.32],
      [74.1, 33.44], [74.45, 32.76], [75.26, 32.27], [74.41, 31.69], [74.42, 30.98], [73.45, 29.98], [72.82, 28.96], [71.78, 27.91],
      [70.62, 27.99], [69.51, 26.94], [70.17, 26.49], [70.28, 25.72], [70.84, 25.22], [71.04, 24.36], [68.84, 24.36], [68.18, 23.69],
      [67.44, 23.94], [67.15, 24.66], [66.37, 25.43], [64.53, 25.24], [62.91, 25.22], [61.5, 25.08], [61.87, 26.24], [63.32, 26.76],
      [63.23, 27.22], [62.76, 27.38], [62.73, 28.26], [61.77, 28.7], [61.37, 29.3], [60.87, 29.83], [62.55, 29.32], [63.55, 29.47],
      [64.15, 29.34], [64.35, 29.56], [65.05, 29.47], [66.35, 29.89], [66.38, 30.74], [66.94, 31.3], [67.68, 31.3], [67.79, 31.58],
      [68.56, 31.71], [68.93, 31.62], [69.32, 31.9], [69.26, 32.5], [69.69, 33.11], [70.32, 33.36], [69.93, 34.02], [70.88, 33.99],
      [71.16, 34.35], [71.12, 34.73], [71.61, 35.15], [71.5, 35.65], [71.26, 36.07], [71.85, 36.51], [72.92, 36.72], [74.07, 36.84],
      [74.58, 37.02], [75.16, 37.13]]
  };
  var BOUNDS = { west: 59.5, east: 78.5, south: 23.0, north: 39.0 };
  var MAP_W = 820;
  var KX = Math.cos((BOUNDS.south + BOUNDS.north) / 2 * Math.PI / 180);  // equirectangular, true at mid-latitude
  var SCALE = MAP_W / ((BOUNDS.east - BOUNDS.west) * KX);
  var MAP_H = Math.round((BOUNDS.north - BOUNDS.south) * SCALE);

  function project(lon, lat) { return [(lon - BOUNDS.west) * KX * SCALE, (BOUNDS.north - lat) * SCALE]; }
  function inFrame(p) { return p.kind !== "country" && p.lon >= BOUNDS.west && p.lon <= BOUNDS.east && p.lat >= BOUNDS.south && p.lat <= BOUNDS.north; }

  function renderMap(main) {
    var topic = PARAMS.get("topic") || "";
    var bar = h("div", { class: "toolbar" }, selectField("Topic", "topic", META.topics, topic, "All topics"));
    bar.querySelector("select").addEventListener("change", function (ev) {
      window.location.assign(pageUrl("/map", { topic: ev.target.value }));
    });
    var mapBox = h("section", { class: "panel" }, bar);
    var detail = panel("Place", null);
    detail.id = "place-detail";
    var detailBody = h("div", { class: "panel-body" }, h("p", { class: "muted small" }, "Select a place on the map or in the list."));
    detail.appendChild(detailBody);
    var listPanel = panel("Places mentioned", null);
    append(main, [pageHead("Map of places mentioned", "dot size = articles mentioning the place · " + deskNote()),
      h("div", { class: "map-wrap" }, mapBox, h("div", null, detail, listPanel))]);

    return api("places", { desk: DESK, topic: topic }).then(function (data) {
      var svg = s("svg", { class: "map", id: "place-map", viewBox: "0 0 " + MAP_W + " " + MAP_H, role: "img", "aria-label": "Map of places mentioned" });
      for (var lon = 60; lon <= 78; lon += 2) {
        var a = project(lon, BOUNDS.south), b = project(lon, BOUNDS.north);
        svg.appendChild(s("line", { class: "graticule", x1: a[0], y1: a[1], x2: b[0], y2: b[1] }));
        svg.appendChild(s("text", { class: "grat-label", x: a[0] + 3, y: MAP_H - 4 }, lon + "°E"));
      }
      for (var lat = 24; lat <= 38; lat += 2) {
        var c = project(BOUNDS.west, lat), d = project(BOUNDS.east, lat);
        svg.appendChild(s("line", { class: "graticule", x1: c[0], y1: c[1], x2: d[0], y2: d[1] }));
        svg.appendChild(s("text", { class: "grat-label", x: 4, y: c[1] - 3 }, lat + "°N"));
      }
      Object.keys(OUTLINES).forEach(function (name) {
        var path = OUTLINES[name].map(function (pt, i) { var p = project(pt[0], pt[1]); return (i ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1); }).join(" ") + " Z";
        svg.appendChild(s("path", { class: "land", d: path }));
      });
      [["AFGHANISTAN", 65.2, 33.6], ["PAKISTAN", 68.3, 27.6]].forEach(function (lbl) {
        var p = project(lbl[1], lbl[2]);
        svg.appendChild(s("text", { class: "country-label", x: p[0], y: p[1], "text-anchor": "middle" }, lbl[0]));
      });
      var sea = project(63.6, 23.9);
      svg.appendChild(s("text", { class: "sea-label", x: sea[0], y: sea[1], "text-anchor": "middle" }, "Arabian Sea"));
      var iran = project(60.2, 31.0);
      svg.appendChild(s("text", { class: "sea-label", x: iran[0], y: iran[1] }, "IRAN"));
      var india = project(75.6, 28.2);
      svg.appendChild(s("text", { class: "sea-label", x: india[0], y: india[1] }, "INDIA"));

      var inside = data.places.filter(inFrame);
      var outside = data.places.filter(function (p) { return !inFrame(p); });
      var dots = {};
      var items = {};
      function select(place) {
        Object.keys(dots).forEach(function (id) { dots[id].classList.toggle("sel", id === place.id); });
        Object.keys(items).forEach(function (id) { items[id].classList.toggle("sel", id === place.id); });
        clear(detailBody);
        detail.querySelector("h2").textContent = place.name;
        append(detailBody, [
          h("p", { class: "small muted" }, place.count + (place.count === 1 ? " article" : " articles") + " · " +
            place.lat.toFixed(2) + "°, " + place.lon.toFixed(2) + "°"),
          h("ul", { class: "mini" }, place.articles.map(function (art) {
            return h("li", null, h("a", { href: storyUrl(art.story_id) }, art.title),
              h("div", { class: "muted small" }, art.source + " · " + fmtDate(art.time)));
          }))]);
      }
      var placed = [];
      function collides(box) {
        return placed.some(function (o) { return box[0] < o[2] && box[2] > o[0] && box[1] < o[3] && box[3] > o[1]; });
      }
      var maxCount = Math.max.apply(null, [1].concat(inside.map(function (p) { return p.count; })));
      inside.forEach(function (place) {
        var pt = project(place.lon, place.lat);
        var r = 4 + 10 * Math.sqrt(place.count / maxCount);
        placed.push([pt[0] - r, pt[1] - r, pt[0] + r, pt[1] + r]);
      });
      inside.forEach(function (place) {  // biggest first (the API sorts by count), so they keep their labels
        var pt = project(place.lon, place.lat);
        var r = 4 + 10 * Math.sqrt(place.count / maxCount);
        var dot = s("circle", { class: "place", cx: pt[0].toFixed(1), cy: pt[1].toFixed(1), r: r.toFixed(1), tabindex: "0", "data-place": place.id },
          s("title", null, place.name + " — " + place.count + (place.count === 1 ? " article" : " articles")));
        dot.addEventListener("click", function () { select(place); });
        dot.addEventListener("keydown", function (ev) { if (ev.key === "Enter") select(place); });
        dots[place.id] = dot;
        svg.appendChild(dot);
        var w = place.name.length * 6.6 + 4, hgt = 13;
        var spots = [[pt[0] + r + 3, pt[1] + 4, "start"], [pt[0] - r - 3, pt[1] + 4, "end"], [pt[0], pt[1] - r - 4, "middle"], [pt[0], pt[1] + r + 13, "middle"]];
        for (var i = 0; i < spots.length; i++) {
          var sp = spots[i];
          var x0 = sp[2] === "start" ? sp[0] : sp[2] === "end" ? sp[0] - w : sp[0] - w / 2;
          var box = [x0, sp[1] - hgt + 2, x0 + w, sp[1] + 2];
          if (!collides(box) && box[0] > 0 && box[2] < MAP_W) {
            placed.push(box);
            svg.appendChild(s("text", { class: "place-label", x: sp[0].toFixed(1), y: sp[1].toFixed(1), "text-anchor": sp[2] }, place.name));
            break;
          }
        }
      });
      mapBox.appendChild(svg);

      if (!data.places.length) { listPanel.appendChild(empty("No places mentioned in the matching articles.")); return; }
      var list = h("ul", { class: "mini place-list", id: "place-list" });
      function addItem(place, note) {
        var li = h("li", { tabindex: "0", "data-place": place.id }, h("div", { class: "top" }, h("span", { class: "count-pill" }, String(place.count)),
          h("strong", null, place.name), note ? h("span", { class: "muted small" }, note) : null));
        li.addEventListener("click", function () { select(place); });
        li.addEventListener("keydown", function (ev) { if (ev.key === "Enter") select(place); });
        items[place.id] = li;
        list.appendChild(li);
      }
      inside.forEach(function (p) { addItem(p, null); });
      outside.forEach(function (p) { addItem(p, p.kind === "country" ? "country" : "outside the map"); });
      listPanel.appendChild(list);
      select(inside.length ? inside[0] : data.places[0]);
    });
  }

  // --- feeds ------------------------------------------------------------------------------

  function renderFeeds(main) {
    var box = h("section", { class: "panel" });
    append(main, [pageHead("Feed health", "polling state of every configured feed, worst first · " + deskNote()), box]);
    return api("feeds", { desk: DESK }).then(function (data) {
      if (data.config_error) box.appendChild(h("p", { class: "error-text panel-body" }, "Config not loaded: " + data.config_error));
      if (!data.feeds.length) { box.appendChild(empty("No feeds configured or polled yet.")); return; }
      var counts = {};
      data.feeds.forEach(function (f) { counts[f.status] = (counts[f.status] || 0) + 1; });
      box.appendChild(h("div", { class: "toolbar summary-chips" }, Object.keys(counts).map(function (st) {
        return h("span", { class: "status " + st }, counts[st] + " " + st);
      })));
      box.appendChild(h("table", { class: "grid", id: "feeds" },
        h("thead", null, h("tr", null, h("th", null, "Status"), h("th", null, "Feed"), h("th", null, "Desk"), h("th", null, "Last poll"),
          h("th", null, "Last success"), h("th", { class: "num" }, "HTTP"), h("th", { class: "num" }, "Items"),
          h("th", { class: "num" }, "Not modified"), h("th", { class: "num" }, "Errors"), h("th", null, "Last problem"))),
        h("tbody", null, data.feeds.map(function (f) {
          var href = safeHref(f.url);
          return h("tr", { "data-feed-id": f.feed_id },
            h("td", null, h("span", { class: "status " + f.status }, f.status)),
            h("td", null, h("strong", null, f.feed_id),
              f.url ? h("div", { class: "muted small mono" }, href ? h("a", { href: href, target: "_blank", rel: "noopener noreferrer" }, f.url) : f.url) : null),
            h("td", null, deskBadge(f.desk)),
            h("td", { class: "nowrap" }, timeEl(f.last_polled, ago(f.last_polled))),
            h("td", { class: "nowrap" }, timeEl(f.last_success, ago(f.last_success))),
            h("td", { class: "num" }, f.last_status === null ? "—" : String(f.last_status)),
            h("td", { class: "num" }, String(f.items_total)),
            h("td", { class: "num" }, String(f.not_modified_count)),
            h("td", { class: "num" }, String(f.error_count)),
            h("td", null, f.last_error ? h("span", { class: "error-text" }, f.last_error) : h("span", { class: "muted" }, "—"),
              f.retry_after && parseTime(f.retry_after) > new Date() ?
                h("div", { class: "muted small" }, "publisher asked to wait until " + fmtTime(f.retry_after)) : null));
        }))));
    });
  }

  // --- start ------------------------------------------------------------------------------

  var RENDERERS = {
    alerts: renderAlerts, search: renderSearch, stories: renderStories, story: renderStory,
    timeline: renderTimeline, event: renderEvent, topics: renderTopics, map: renderMap, feeds: renderFeeds
  };

  function start() {
    var main = document.getElementById("main");
    api("meta").then(function (meta) {
      META = meta;
      meta.topics.forEach(function (t) { TOPIC_NAMES[t.id] = t.name || t.id; });
      setupChrome(meta);
    }).catch(showError).then(function () {
      var render = RENDERERS[PAGE] || renderAlerts;
      return Promise.resolve(render(main));
    }).catch(showError).then(function () {
      body.setAttribute("data-ready", "true");
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

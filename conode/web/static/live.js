// conode: live updates. Listens to /events (server-sent events); on each event it shows a
// short note and refreshes the parts of this page marked data-live, without a reload.
(function () {
  "use strict";
  if (!window.EventSource) { return; }
  var toasts = document.getElementById("toasts");
  var refreshing = false;
  var again = false;

  function toast(text) {
    if (!text || !toasts) { return; }
    var note = document.createElement("p");
    note.className = "toast";
    note.textContent = text;
    toasts.appendChild(note);
    setTimeout(function () { note.remove(); }, 8000);
  }

  function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(window.location.href, { headers: { "X-Live": "1" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live][id]").forEach(function (old) {
          var replacement = fresh.getElementById(old.id);
          if (replacement) { old.replaceWith(document.importNode(replacement, true)); }
        });
      })
      .catch(function () {})
      .finally(function () {
        refreshing = false;
        if (again) { again = false; refresh(); }
      });
  }

  var source = new EventSource("/events");
  ["payment", "bill", "governance", "exchange", "lookout"].forEach(function (kind) {
    source.addEventListener(kind, function (message) {
      try { toast(JSON.parse(message.data).text); } catch (e) { /* not ours */ }
      refresh();
    });
  });
  document.documentElement.dataset.live = "connected";
})();

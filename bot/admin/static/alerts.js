/* 乡法通后台: urgent alerts on every page.
 * Every few seconds ask /admin/alerts; while an urgent ticket nobody has opened is pending, show the red
 * banner (links to the tickets) and sound the alarm (again every 15 s). Opening the ticket ends the alert.
 * Tickets escalated to the user's 三长联动 position show in the banner too, without the sound.
 * A visible page's ask also tells the server this staff member is at the screen.
 * No inline script (CSP script-src 'self'); villager text never comes here, and text is set with
 * textContent only. If the browser blocks sound until a tap, a button in the banner turns it on. */
(function () {
  "use strict";
  var banner = document.getElementById("alert-banner");
  if (!banner || !window.fetch) { return; }
  var pollUrl = banner.getAttribute("data-poll");
  var every = parseInt(banner.getAttribute("data-every"), 10) || 4000;
  var list = banner.querySelector(".alert-list");
  var soundButton = banner.querySelector(".alert-sound");
  var title = banner.querySelector(".alert-title");
  var audio = new Audio(banner.getAttribute("data-sound"));
  var baseTitle = document.title;
  var lastPlayed = 0;
  var known = {};
  var REPEAT_MS = 15000;

  function play(force) {
    var now = Date.now();
    if (!force && now - lastPlayed < REPEAT_MS) { return; }
    lastPlayed = now;
    try {
      audio.currentTime = 0;
      var started = audio.play();
      if (started && started.then) {
        started.then(function () {
          banner.setAttribute("data-sound-state", "playing");
          soundButton.hidden = true;
        }, function () {
          banner.setAttribute("data-sound-state", "blocked");
          soundButton.hidden = false;
        });
      }
    } catch (e) {
      banner.setAttribute("data-sound-state", "blocked");
      soundButton.hidden = false;
    }
  }

  function line(alert) {
    var li = document.createElement("li");
    var a = document.createElement("a");
    a.href = alert.url;
    var text = alert.number + "（" + alert.village + "）" + alert.kind + " · ";
    if (alert.since) { text += alert.since + " 求助，"; }
    text += alert.minutes > 0 ? "已 " + alert.minutes + " 分钟没人打开" : "还没人打开";
    if (alert.escalated) { text += " · 已报全部乡管理员"; }
    a.textContent = text + " · 点开处理";
    li.appendChild(a);
    return li;
  }

  function show(alerts) {
    var fresh = false;
    var loud = false;
    var seen = {};
    while (list.firstChild) { list.removeChild(list.firstChild); }
    alerts.forEach(function (alert) {
      seen[alert.id] = true;
      if (alert.urgent) {
        loud = true;
        if (!known[alert.id]) { fresh = true; }
      }
      list.appendChild(line(alert));
    });
    known = seen;
    banner.setAttribute("data-count", String(alerts.length));
    if (alerts.length) {
      banner.hidden = false;
      document.title = (loud ? "【紧急】" : "【待处理】") + baseTitle;
      title.textContent = loud ? "紧急求助，请马上处理" : "三长联动：有升级给您的工单";
      if (loud) { play(fresh); }
    } else {
      banner.hidden = true;
      document.title = baseTitle;
    }
  }

  function poll() {
    var visible = document.visibilityState === "visible" ? "1" : "0";
    fetch(pollUrl + "?visible=" + visible, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        return response.ok && type.indexOf("json") >= 0 ? response.json() : null;
      })
      .then(function (data) { if (data && data.alerts) { show(data.alerts); } })
      .catch(function () { /* offline for a moment: the next poll tries again */ })
      .then(function () { window.setTimeout(poll, every); });
  }

  soundButton.addEventListener("click", function () { play(true); });
  Array.prototype.forEach.call(list.querySelectorAll("a[data-urgent]"), function (a) {
    known[a.getAttribute("data-id")] = true;
  });
  if (list.querySelector("a[data-urgent]")) { play(true); }
  poll();
}());

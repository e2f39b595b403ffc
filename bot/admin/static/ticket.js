/* 乡法通后台: the ticket page follows its replies on their way to the villager's WeChat.
 * While a reply is 等待发送 or 正在发送, ask the ticket's deliveries every 3 s and update the state in place
 * (已送达微信, 等村民下次发消息后送达, 发送失败 with its reason), so nobody has to reload the page — a reload
 * would lose a reply being typed. Stops when nothing is on its way, after 10 minutes, or when the page
 * is hidden (resumes when it is shown). Text is set with textContent only (CSP script-src 'self'). */
(function () {
  "use strict";
  var thread = document.querySelector("ol.thread[data-deliveries]");
  if (!thread || !window.fetch) { return; }
  var url = thread.getAttribute("data-deliveries");
  var EVERY_MS = 3000;
  var GIVE_UP_MS = 10 * 60 * 1000;
  var started = Date.now();
  var timer = null;

  function onItsWay() {
    return thread.querySelectorAll(".delivery.pending, .delivery.sending").length > 0;
  }

  function show(box, state) {
    box.className = "delivery " + state.status;
    var label = box.querySelector(".state");
    if (label) { label.textContent = state.text; }
    var small = box.querySelector("small");
    if (state.reason) {
      if (!small) {
        box.appendChild(document.createElement("br"));
        small = document.createElement("small");
        box.appendChild(small);
      }
      small.textContent = "原因：" + state.reason;
    }
  }

  function ask() {
    timer = null;
    if (document.hidden || Date.now() - started > GIVE_UP_MS || !onItsWay()) { return; }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : {}; })
      .then(function (states) {
        var boxes = thread.querySelectorAll(".delivery[data-outbox]");
        for (var i = 0; i < boxes.length; i++) {
          var state = states[boxes[i].getAttribute("data-outbox")];
          if (state) { show(boxes[i], state); }
        }
      })
      .catch(function () { /* the next ask tries again */ })
      .then(schedule);
  }

  function schedule() {
    if (timer === null && onItsWay()) { timer = window.setTimeout(ask, EVERY_MS); }
  }

  document.addEventListener("visibilitychange", function () { if (!document.hidden) { schedule(); } });
  schedule();
})();

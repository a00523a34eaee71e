// One-tap rating: the page a rating link opens records the rating by posting its form.
// A link scanner or preview that only fetches the page records nothing; a browser without
// scripts shows the button instead. Sent once, and only when the page is really shown.
(function () {
  "use strict";
  function send() {
    var form = document.getElementById("one-tap");
    if (!form || form.dataset.sent) { return; }
    if (document.visibilityState && document.visibilityState !== "visible") { return; }
    form.dataset.sent = "1";
    form.submit();
  }
  document.addEventListener("visibilitychange", send);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", send);
  } else {
    send();
  }
})();

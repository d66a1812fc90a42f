// The subscriber import's progress bar: the upload goes through XMLHttpRequest so that its
// progress can be shown, then the server's report replaces the page's main part. Without
// this script (or without XMLHttpRequest) the plain form posts as before.
(function () {
  "use strict";
  if (!window.XMLHttpRequest || !window.FormData || !window.DOMParser) return;

  function show(box, percent, words) {
    var bar = box.querySelector("progress");
    var label = box.querySelector("[data-progress-label]");
    box.hidden = false;
    if (percent === null) bar.removeAttribute("value");
    else bar.value = percent;
    label.textContent = words;
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || form.id !== "import-form") return;
    var box = document.getElementById("upload-progress");
    if (!box) return;
    event.preventDefault();
    var button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.upload.onprogress = function (e) {
      if (!e.lengthComputable) return show(box, null, "Uploading…");
      var percent = Math.floor((e.loaded / e.total) * 100);
      show(box, percent, "Uploaded " + percent + "% (" + Math.round(e.loaded / 1024) + " of " +
        Math.round(e.total / 1024) + " KiB)");
    };
    xhr.upload.onload = function () {
      show(box, null, "Uploaded. Importing the rows…");
    };
    xhr.onload = function () {
      var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var fresh = page.querySelector("main");
      var main = document.querySelector("main");
      if (fresh && main) {
        main.replaceWith(fresh);
        var heading = fresh.querySelector("#result-heading, [role=alert]");
        if (heading) heading.scrollIntoView();
      } else {
        show(box, null, "The server answered " + xhr.status + ". Reload the page and try again.");
        if (button) button.disabled = false;
      }
    };
    xhr.onerror = function () {
      show(box, null, "The upload failed (the connection was lost). Try again.");
      if (button) button.disabled = false;
    };
    xhr.send(new FormData(form));
  });
})();

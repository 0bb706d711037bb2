/* Lore web UI: the one script the pages load (Content-Security-Policy: script-src 'self').
 * Everything here is an enhancement; every page and form works without it.
 * - "/" focuses the search box (unless you are typing in a field already).
 * - Dropping a file on the upload form's drop zone puts it in the file input.
 */
(function () {
  "use strict";

  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "/" || ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
    var box = document.querySelector("form.search input[name=q]");
    if (!box) return;
    ev.preventDefault();
    box.focus();
    box.select();
  });

  function setUpDropzone(zone) {
    var input = zone.querySelector("input[type=file]");
    var name = zone.querySelector(".drop-name");
    if (!input) return;
    function show() {
      if (name) name.textContent = input.files && input.files.length ? input.files[0].name : "";
    }
    function over(ev) {
      ev.preventDefault();
      zone.classList.add("dragover");
    }
    zone.addEventListener("dragenter", over);
    zone.addEventListener("dragover", over);
    zone.addEventListener("dragleave", function () {
      zone.classList.remove("dragover");
    });
    zone.addEventListener("drop", function (ev) {
      ev.preventDefault();
      zone.classList.remove("dragover");
      var files = ev.dataTransfer && ev.dataTransfer.files;
      if (!files || !files.length) return;
      var one = new DataTransfer();
      one.items.add(files[0]);
      input.files = one.files;
      show();
    });
    input.addEventListener("change", show);
    zone.classList.add("enhanced");
  }

  function ready() {
    var zones = document.querySelectorAll(".dropzone");
    for (var i = 0; i < zones.length; i++) setUpDropzone(zones[i]);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();

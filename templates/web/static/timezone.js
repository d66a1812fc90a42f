// The sign-up form suggests the reader's time zone: the one their browser says it is in.
// Readers change it later on their preferences page; without this script none is sent.
(function () {
  var field = document.getElementById("timezone");
  if (!field || field.value) return;
  try {
    field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (e) {
    field.value = "";
  }
})();

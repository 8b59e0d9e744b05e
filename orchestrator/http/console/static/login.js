// The login form posts itself (no script needed); this only shows why we are back here.
const params = new URLSearchParams(location.search);
if (params.has("error")) document.getElementById("login-error").hidden = false;

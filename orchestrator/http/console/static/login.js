// The login form posts itself (no script needed); this only shows why we are back here.
const REASONS = {
  key: "That key is not valid for this service.",
  name: "Give your name: it is recorded with every action you take.",
};
const reason = new URLSearchParams(location.search).get("error");
if (reason !== null) {
  const box = document.getElementById("login-error");
  box.textContent = REASONS[reason] || REASONS.key;
  box.hidden = false;
}

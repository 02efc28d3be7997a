// A module of the page that cannot load (a dropped connection, a browser without JavaScript
// modules) stops app.js without any error on the page: say so, and what to do.
addEventListener('load', () => {
  if (window.triposgStarted) return;
  const banner = document.getElementById('banner');
  banner.hidden = false;
  banner.textContent = 'This page could not load its scripts: reload it. If that does not help, the server may have stopped, or this browser is too old for it.';
});

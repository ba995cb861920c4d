// Offboard's screens rendered by the server load no app, only this: it rewrites each
// <time datetime="…"> in the reader's own time zone, named ("7 Dec 2026, 13:17 CET"), with
// the options the app uses (app/src/pages/times.rs). Without it the server's words stay:
// the same time in UTC, named.
(function () {
  var words = new Intl.DateTimeFormat('en-GB', {
    day: 'numeric', month: 'short', year: 'numeric',
    hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZoneName: 'short'
  });
  function local() {
    var times = document.querySelectorAll('time[datetime]');
    for (var i = 0; i < times.length; i++) {
      var at = new Date(times[i].getAttribute('datetime'));
      if (!isNaN(at.getTime())) times[i].textContent = words.format(at);
    }
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', local);
  else local();
})();

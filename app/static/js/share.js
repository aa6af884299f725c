// Job page: the "share to showcase" box appears when the result does (job.js reveals #download when done).
(function () {
  const share = document.getElementById("share");
  const download = document.getElementById("download");
  if (!share || !download) return;
  const follow = () => { share.hidden = download.hidden; };
  new MutationObserver(follow).observe(download, { attributes: true, attributeFilter: ["hidden"] });
  follow();
})();

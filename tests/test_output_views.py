"""What people look at: the per-chunk session view, the sweep plots' axes, and report.html as a
browser renders it."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from sim.plots import session_timeline
from sim.run import main as run_main
from sim.sweep._plots import _scale_axis
from sim.whatif import main as whatif_main
from traces.formats import write_cooked
from traces.trace import Trace

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("traces")
    rng = np.random.default_rng(3)
    for i, mean in enumerate((0.05, 0.4, 2.0)):
        write_cooked(Trace(np.full(40, 1.0), mean * rng.uniform(0.5, 1.5, 40), name=f"t{i}"), root / f"t{i}.txt")
    return str(root)


def test_session_timeline_hand_computed():
    # chunk 0: request at 0, 1 s download; chunk 1 waits 0.5 s after its 2 s download;
    # the decoder is busy with chunk 1 (3 s) until 6, so chunk 2 (arrives 4.5) decodes from 6
    chunks = {"delay_s": np.array([[1.0], [2.0], [1.0]]), "wait_s": np.array([[0.0], [0.5], [0.0]]),
              "decode_s": np.array([[0.5], [3.0], [0.1]])}  # fmt: skip
    t = session_timeline(chunks, 0)
    assert t["start"].tolist() == [0.0, 1.0, 3.5]
    assert t["arrive"].tolist() == [1.0, 3.0, 4.5]
    assert t["next"].tolist() == [1.0, 3.5, 4.5]
    assert t["decode_start"].tolist() == [1.0, 3.0, 6.0]


def test_run_plot_one_file_per_policy(trace_dir, tmp_path, capsys):
    out = tmp_path / "view.png"
    assert run_main(["--policy", "bba", "--policy", "robustmpc", "--trace", trace_dir, "--ladder",
                     "synthetic:promptus:chunks=8", "--plot", str(out), "--plot-session", "1"]) == 0  # fmt: skip
    files = sorted(p.name for p in tmp_path.glob("*.png"))
    assert files == ["view-0-bba.png", "view-1-robustmpc.png"]
    assert all((tmp_path / f).read_bytes().startswith(PNG) for f in files)
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    "args, message",
    [(["--plot", "x.svg"], "--plot must end in .png"), (["--plot", "x.png", "--plot-session", "9"], "0..2")],
)
def test_run_plot_bad_options(trace_dir, tmp_path, capsys, args, message):
    args = [a if a not in ("x.svg", "x.png") else str(tmp_path / a) for a in args]
    assert run_main(["--trace", trace_dir, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_scale_axis_ticks_are_the_swept_values():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0.125, 0.5, 2.0], [1, 2, 3])
    _scale_axis(ax, [0.125, 0.5, 0.5, 2.0])
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.125", "0.5", "2"]
    plt.close(fig)


_PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const r = {images: imgs.length, loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
             visible_tables: [...document.querySelectorAll('table')]
                               .filter(t => t.checkVisibility() && t.offsetHeight > 0).length,
             tables: document.querySelectorAll('table').length,
             details: document.querySelectorAll('details').length};
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});
</script>"""


def test_report_renders_in_headless_chromium(trace_dir, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (`.ci/run` installs Debian's chromium; `apt-get install chromium`)")
    out = tmp_path / "sweep"
    assert whatif_main(["--policy", "bba,robustmpc", "--ladder", "synthetic:promptus:chunks=8", "--trace", trace_dir,
                        "--scale", "0.5,1,2", "--sessions", "3", "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    page = (out / "report.html").read_text()
    assert "<script" not in page and 'src="http' not in page  # the report itself stays self-contained
    probe = tmp_path / "probe.html"  # a copy with a probe script; the report is not changed
    probe.write_text(page.replace("</body>", _PROBE + "</body>"))
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000", "--dump-dom"]
    dom = subprocess.run([*cmd, probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    start = dom.index('<pre id="probe">') + len('<pre id="probe">')
    found = json.loads(dom[start : dom.index("</pre>", start)])
    assert found["images"] == 3 and found["loaded"] == 3  # vs scale, LPIPS CDF, one session (no crossover here)
    # every table outside the collapsed <details> block is visible; the details block holds one
    assert found["details"] == 1 and found["visible_tables"] == found["tables"] - 1

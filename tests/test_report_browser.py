"""The report as a reader sees it: opened in headless Chromium, every figure loaded, laid out
on the page and not blank, with a full-page screenshot to look at."""

import re

import pytest
from browser import chromium, screenshots_dir
from PIL import Image, ImageStat

# Every <img> with what the browser made of it: decoded size, laid-out box, visibility.
IMAGES_JS = """
[...document.images].map(img => {
    const box = img.getBoundingClientRect();
    const style = getComputedStyle(img);
    return {
        src: img.getAttribute('src'),
        complete: img.complete,
        naturalWidth: img.naturalWidth,
        naturalHeight: img.naturalHeight,
        x: box.left + window.scrollX,
        y: box.top + window.scrollY,
        width: box.width,
        height: box.height,
        visible: style.display !== 'none' && style.visibility !== 'hidden'
            && Number(style.opacity) > 0,
        section: (() => {
            for (let el = img; el; el = el.previousElementSibling || el.parentElement)
                if (el.tagName === 'H2') return el.innerText;
            return null;
        })(),
    };
})
"""
PAGE_SIZE_JS = "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"


@pytest.fixture(scope="module")
def rendered_report(pipeline_run, tmp_path_factory):
    """The report's index.html opened from disk: its images and a full-page screenshot."""
    index = pipeline_run.reports / "index.html"
    with chromium(tmp_path_factory.mktemp("chromium"), width=1280, height=900) as page:
        page.goto(index.as_uri())
        # `load` waits for images; decode() also waits for the pixels to be ready to paint.
        page.evaluate("Promise.all([...document.images].map(img => img.decode()))")
        images = page.evaluate(IMAGES_JS)
        page_size = page.evaluate(PAGE_SIZE_JS)
        screenshot = page.screenshot(screenshots_dir(tmp_path_factory) / "report.png")
    print(f"report screenshot: {screenshot}")
    return {"index": index, "images": images, "page_size": page_size, "screenshot": screenshot}


def test_report_shows_every_figure_it_wrote(rendered_report):
    index = rendered_report["index"]
    shown = [image["src"] for image in rendered_report["images"]]
    referenced = set(re.findall(r'src="([^"]+\.png)"', index.read_text(encoding="utf-8")))
    written = {path.name for path in index.parent.glob("*.png")}
    assert len(shown) == len(set(shown)), f"a figure is shown twice: {shown}"
    assert set(shown) == referenced == written
    # activity and segments always have data; other sections add figures when they do.
    assert len(shown) >= 2
    sections = [image["section"] for image in rendered_report["images"]]
    assert None not in sections, "a figure outside any section"
    assert len(set(sections)) == len(sections), f"two figures in one section: {sections}"


def test_every_figure_is_loaded_and_laid_out(rendered_report):
    page_width, page_height = rendered_report["page_size"]
    assert page_width <= 1280, "the page is wider than the window: something overflows"
    for image in rendered_report["images"]:
        name = image["src"]
        assert image["complete"] and image["naturalWidth"] > 0, f"{name} did not load"
        assert image["visible"], f"{name} is hidden"
        assert image["width"] >= 200 and image["height"] >= 100, f"{name} is too small: {image}"
        assert 0 <= image["x"] and image["x"] + image["width"] <= page_width + 1, name
        assert 0 <= image["y"] and image["y"] + image["height"] <= page_height + 1, name


def test_screenshot_shows_each_figure_painted(rendered_report):
    """Crop each figure's box out of the full-page screenshot: not a blank rectangle."""
    screenshot = Image.open(rendered_report["screenshot"]).convert("L")
    page_width, page_height = rendered_report["page_size"]
    assert screenshot.size[0] >= page_width - 1 and screenshot.size[1] >= page_height - 1
    for image in rendered_report["images"]:
        box = (image["x"], image["y"], image["x"] + image["width"], image["y"] + image["height"])
        crop = screenshot.crop(tuple(round(value) for value in box))
        low, high = crop.getextrema()
        assert high - low > 100, f"{image['src']} is painted as a blank area"
        assert ImageStat.Stat(crop).stddev[0] > 5, f"{image['src']} shows almost nothing"

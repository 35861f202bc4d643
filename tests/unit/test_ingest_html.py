"""HTML pages: the main content is summarised, not the site's menus, footer and cookie banner.

Before, every visible word was kept, so a saved blog post started with "We use cookies ...
Accept all Reject all Home Products Pricing" and ended with the footer's legal links.
"""

from __future__ import annotations

from pathlib import Path

from routeq.batch.ingest import collect, html_to_text

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>How we cut our cloud bill by 40% | Northwind Engineering Blog</title>
<link rel="stylesheet" href="/static/site.css">
<script>window.dataLayer = [];</script>
</head>
<body>
<div id="cookie-banner" class="cookie-consent" role="dialog" aria-label="Cookie consent">
  <p>We use cookies to improve your experience, analyse traffic and show personalised ads.
  By clicking "Accept all" you agree to our use of cookies. <a href="/privacy">Privacy</a></p>
  <button>Accept all</button> <button>Reject all</button> <button>Manage preferences</button>
</div>
<header class="site-header">
  <a class="logo" href="/">Northwind</a>
  <nav aria-label="Main">
    <ul>
      <li><a href="/">Home</a></li><li><a href="/products">Products</a></li>
      <li><a href="/pricing">Pricing</a></li><li><a href="/blog">Blog</a></li>
      <li><a href="/careers">Careers</a></li><li><a href="/contact">Contact us</a></li>
    </ul>
  </nav>
  <form class="search" action="/search"><input name="q"><button>Search</button></form>
</header>
<div class="breadcrumbs"><a href="/">Home</a> &rsaquo; <a href="/blog">Blog</a> &rsaquo; Infra</div>
<main>
<article>
<h1>How we cut our cloud bill by 40%</h1>
<p class="byline">By Amara Okafor &middot; 12 March 2025 &middot; 6 min read</p>
<p>Last year our monthly cloud spend grew faster than our traffic. By December we were paying
$84,000 a month to serve roughly the same number of customers as in January.</p>
<h2>1. Right-sizing the database fleet</h2>
<p>Most of our Postgres replicas ran at under 15% CPU. We moved them to smaller instances,
which alone saved $14,000 a month.</p>
<table>
<tr><th>Change</th><th>Monthly saving</th></tr>
<tr><td>Database right-sizing</td><td>$14,000</td></tr>
<tr><td>Spot batch jobs</td><td>$11,000</td></tr>
</table>
<div class="share-buttons">Share this post: <a href="#">LinkedIn</a> <a href="#">Email</a></div>
</article>
</main>
<aside class="sidebar">
  <h3>Related posts</h3>
  <ul><li><a href="/blog/a">Migrating to Kubernetes in six weeks</a></li></ul>
  <div class="newsletter"><h3>Subscribe to our newsletter</h3>
  <p>Get the best engineering posts in your inbox once a month.</p>
  <form><input type="email"><button>Subscribe</button></form></div>
</aside>
<footer class="site-footer">
  <ul><li><a href="/about">About</a></li><li><a href="/privacy">Privacy</a></li>
  <li><a href="/cookies">Cookie settings</a></li></ul>
  <p>&copy; 2025 Northwind Software Ltd. All rights reserved.</p>
</footer>
<script>track("page_view");</script>
</body>
</html>
"""

ARTICLE_TEXT = (
    "How we cut our cloud bill by 40%\n\n"
    "By Amara Okafor \u00b7 12 March 2025 \u00b7 6 min read\n\n"
    "Last year our monthly cloud spend grew faster than our traffic. By December we were paying "
    "$84,000 a month to serve roughly the same number of customers as in January.\n\n"
    "1. Right-sizing the database fleet\n\n"
    "Most of our Postgres replicas ran at under 15% CPU. We moved them to smaller instances, "
    "which alone saved $14,000 a month.\n\n"
    "Change\tMonthly saving\n"
    "Database right-sizing\t$14,000\n"
    "Spot batch jobs\t$11,000"
)


def test_a_blog_post_keeps_its_article_and_drops_the_site_chrome(tmp_path: Path) -> None:
    path = tmp_path / "post.html"
    path.write_text(PAGE, encoding="utf-8")
    (document,) = collect([path])
    assert document.ok, document.rejected
    assert document.text == ARTICLE_TEXT
    assert document.metadata["title"] == (
        "How we cut our cloud bill by 40% | Northwind Engineering Blog"
    )


def test_chrome_is_dropped_without_main_or_article_too() -> None:
    # The same page without <main>/<article>: the landmarks and names still mark the chrome.
    page = PAGE.replace("<main>", "").replace("</main>", "")
    page = page.replace("<article>", "<div>").replace("</article>", "</div>")
    text, _ = html_to_text(page)
    assert text == ARTICLE_TEXT


def test_div_soup_uses_names_but_never_drops_a_wrapper_that_holds_the_content() -> None:
    page = """<html><head><title>News</title></head><body class="home has-sidebar">
<div id="page" class="site has-sidebar">
 <div id="cookie-notice">This website uses cookies. <a href="#">OK</a></div>
 <div id="nav"><ul class="menu"><li><a href="/">Home</a></li><li><a href="/a">About</a></li>
 </ul></div>
 <div class="breadcrumbs"><a href="/">Home</a> / News</div>
 <div id="content">
  <h1>Quarterly results</h1>
  <p>Revenue rose 12% to 4.1 million euros, driven by the new subscription plans.</p>
  <p>The board proposes a dividend of 0.30 euros per share.</p>
  <div class="social-links"><a href="#">Facebook</a> <a href="#">X</a></div>
 </div>
 <div id="sidebar"><h3>Archives</h3><ul><li>March 2025</li></ul></div>
 <div class="hidden-print" hidden>Print this page</div>
</div>
</body></html>"""
    text, title = html_to_text(page)
    assert title == "News"
    assert text == (
        "Quarterly results\n\n"
        "Revenue rose 12% to 4.1 million euros, driven by the new subscription plans.\n\n"
        "The board proposes a dividend of 0.30 euros per share."
    )


def test_landmark_roles_count_like_elements() -> None:
    page = (
        '<div role="banner"><a>Logo</a></div><div role="navigation"><a>Home</a></div>'
        '<div role="main"><p>The content.</p></div>'
        '<div role="contentinfo">Imprint</div>'
    )
    assert html_to_text(page)[0] == "The content."


def test_an_articles_own_header_is_content_the_pages_header_is_not() -> None:
    page = (
        "<header><a>Site name</a></header>"
        "<article><header><h2>Post title</h2></header><p>Post body.</p>"
        "<footer>Tags: cloud</footer></article>"
    )
    assert html_to_text(page)[0] == "Post title\n\nPost body."


def test_a_tiny_main_does_not_stand_for_the_page() -> None:
    page = (
        "<main><h1>Title</h1></main><div><p>The real text of the page, written outside the "
        "main element by a sloppy template, and much longer than the heading.</p></div>"
        "<footer>Imprint</footer>"
    )
    assert html_to_text(page)[0] == (
        "Title\n\nThe real text of the page, written outside the main element by a sloppy "
        "template, and much longer than the heading."
    )


def test_a_page_that_is_all_navigation_keeps_its_text_rather_than_none() -> None:
    text, _ = html_to_text("<nav><a>Home</a> <a>About</a> <a>Contact</a></nav>")
    assert text == "Home About Contact"


def test_an_unclosed_chrome_element_cannot_swallow_the_page() -> None:
    # A cookie banner left open runs to the end of the page, as in a browser; rather than an
    # empty document, the page's whole text is kept.
    page = '<div class="cookie-bar">We use cookies.<p>Body text of the page.</p>'
    assert html_to_text(page)[0] == "We use cookies.\n\nBody text of the page."

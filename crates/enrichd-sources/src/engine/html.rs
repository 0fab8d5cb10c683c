//! A page's HTML, parsed by scraper (html5ever) with its nesting bounded.
//!
//! html5ever's tree builder searches its stack of open elements for most
//! start and end tags, and nothing bounds that stack: a page of nested
//! `<div>`s costs time in the square of its depth (256 KiB of them took
//! 7.5 s of CPU here, and a 2 MiB body about sixty times that, on the
//! thread serving other calls; servo/html5ever#788). Browsers stop nesting
//! at 512. Here the page is fed to the parser in pieces, and after each
//! piece the parser's own state (its open elements and its list of active
//! formatting elements, the two lists it searches) is counted: past
//! [`MAX_OPEN`] the page is refused as not a profile page. A piece adds at
//! most a few hundred elements, so no search is ever longer than that
//! bound plus a piece's worth, and the whole parse stays linear.
use std::cell::Cell;
use std::marker::PhantomData;

use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::tree_builder::Tracer;
use scraper::{Html, HtmlTreeSink};

/// Open elements (and active formatting elements) a page may hold at once.
pub const MAX_OPEN: usize = 512;

/// How much of the page is fed at a time: at most about a third as many
/// elements as bytes can open in one piece.
const PIECE: usize = 1024;

/// Counts what the tree builder holds (its handles, whatever their type).
struct Count<H>(Cell<usize>, PhantomData<H>);

impl<H> Tracer for Count<H> {
    type Handle = H;
    fn trace_handle(&self, _: &H) {
        self.0.set(self.0.get() + 1);
    }
}

/// The page as a document, or why it is refused.
pub fn parse(text: &str) -> Result<Html, String> {
    let mut parser = html5ever::driver::parse_document(
        HtmlTreeSink::new(Html::new_document()),
        Default::default(),
    );
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = PIECE.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (piece, after) = rest.split_at(end);
        parser.process(StrTendril::from_slice(piece));
        rest = after;
        let held = Count(Cell::new(0), PhantomData);
        parser.tokenizer.sink.trace_handles(&held);
        if held.0.get() > MAX_OPEN {
            return Err(format!(
                "the page nests more than {MAX_OPEN} elements deep: not read"
            ));
        }
    }
    Ok(parser.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(body: &str) -> String {
        format!("<!doctype html><html><head><title>t</title></head><body>{body}</body></html>")
    }

    #[test]
    fn a_page_parses_in_pieces_as_it_does_whole() {
        // Multi-byte characters across the pieces' boundaries, tags cut in
        // two, unclosed paragraphs and list items, a table.
        let mut body = String::new();
        for i in 0..300 {
            body += &format!(
                "<p class=\"bio\">Zoë, 東京 — №{i} <a href=\"/u/{i}\">ünïcødé</a><ul><li>one<li>two</ul>"
            );
        }
        body += &"<div>".repeat(MAX_OPEN - 20);
        body += "<table><tr><td>deep</td></tr></table>";
        let text = page(&body);
        assert!(text.len() > 20 * PIECE);
        let ours = parse(&text).expect("a page within the bound");
        assert_eq!(ours.html(), Html::parse_document(&text).html());
    }

    #[test]
    fn pages_that_nest_past_the_bound_are_refused() {
        // Each of these costs html5ever time in the square of its size
        // (64 KiB of the last one: 3.9 s).
        let mut agency = String::new();
        for i in 0..2_000 {
            agency += &format!("<b {i}>");
        }
        for i in 0..2_000 {
            agency += &format!("<i {i}>");
        }
        agency += &"x</b>".repeat(2_000);
        for body in [
            "<span>".repeat(MAX_OPEN + 10),
            "<div>".repeat(100_000),
            "<ul><li>".repeat(100_000),
            agency,
        ] {
            let refused = parse(&page(&body)).expect_err("refused");
            assert!(refused.contains("more than 512 elements deep"), "{refused}");
        }
    }
}

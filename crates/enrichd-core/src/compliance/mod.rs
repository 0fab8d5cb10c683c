//! The rules that the law or the product decides, each in one home. The
//! pipeline calls them; adapters (gRPC, CLI) only map their results.
//!
//! | rule | GDPR | module |
//! |---|---|---|
//! | no processing without a declared purpose, a lawful basis and its evidence | Art. 6(1) | [`gate`] |
//! | the fields and sources a purpose allows; field masks | Art. 5(1)(c) | [`policy`] |
//! | special-category interests are never returned | Art. 9 | [`special`] |
//! | the notice duty and its deadline | Art. 14 | [`notice`] |
//! | how long records are kept, and the sweep that deletes them | Art. 5(1)(e) | [`retention`] |
//! | erasure and objection: what is suppressed, for which purposes | Art. 17, 21 | [`suppression`] |
//! | the logic of the scores, in words | Art. 15(1)(h), 22 | [`profiling`] |
pub mod gate;
pub mod notice;
pub mod policy;
pub mod profiling;
pub mod retention;
pub mod special;
pub mod suppression;

pub use gate::PurposeRegistry;

//! The domain model: the vocabulary every stage speaks (purposes and the
//! ground a claim becomes, findings with provenance, source outcomes,
//! verification and score results, the answer). Plain data with no I/O and
//! no rules; the rules live in `compliance` and `scoring`.
mod answer;
mod finding;
mod outcome;
mod purpose;
mod score;
mod verification;

pub use answer::*;
pub use finding::*;
pub use outcome::*;
pub use purpose::*;
pub use score::*;
pub use verification::*;

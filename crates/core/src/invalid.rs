//! Input that is not what it should be.

/// Why a value was refused, in words for whoever typed it: what was wrong and, where it helps, what to write
/// instead. Every parser and validator of the core returns it; the edges show it next to the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(String);

impl Invalid {
    pub fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }

    /// The words, to show.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

impl From<String> for Invalid {
    fn from(why: String) -> Self {
        Self(why)
    }
}

impl From<&str> for Invalid {
    fn from(why: &str) -> Self {
        Self(why.to_owned())
    }
}

impl From<Invalid> for String {
    fn from(invalid: Invalid) -> Self {
        invalid.0
    }
}

//! DNS wire-format decoding (to be written).

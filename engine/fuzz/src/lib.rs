//! The codec module, compiled from `engine/src/codec` as it is, for fuzzing.
//! It uses only `super::` paths inside itself, so it builds standalone.

#[path = "../../src/codec/mod.rs"]
pub mod codec;

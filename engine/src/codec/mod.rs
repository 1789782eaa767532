//! Wire formats: bencode and KRPC.

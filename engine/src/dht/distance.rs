//! XOR distance in the 160-bit keyspace (BEP 5). Pure functions over ids.

use super::id::NodeId;

/// `a XOR b`, ordered as a 160-bit big-endian integer: smaller is closer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Distance(pub [u8; 20]);

impl Distance {
    pub fn between(a: &NodeId, b: &NodeId) -> Distance {
        let mut d = [0u8; 20];
        for ((x, a), b) in d.iter_mut().zip(a).zip(b) {
            *x = a ^ b;
        }
        Distance(d)
    }

    /// Leading zero bits: the length of the common prefix of the two ids (160 if equal).
    pub fn leading_zeros(&self) -> usize {
        for (i, byte) in self.0.iter().enumerate() {
            if *byte != 0 {
                return i * 8 + byte.leading_zeros() as usize;
            }
        }
        160
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_orders_by_xor_and_counts_common_prefix() {
        let zero: NodeId = [0; 20];
        let mut a = [0u8; 20];
        a[0] = 0x01;
        let mut b = [0u8; 20];
        b[0] = 0x00;
        b[19] = 0xff;
        let da = Distance::between(&zero, &a);
        let db = Distance::between(&zero, &b);
        assert!(db < da);
        assert_eq!(da.leading_zeros(), 7);
        assert_eq!(db.leading_zeros(), 152);
        assert_eq!(Distance::between(&a, &a).leading_zeros(), 160);
        assert_eq!(Distance::between(&a, &b), Distance::between(&b, &a));
    }
}

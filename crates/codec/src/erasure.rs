//! Reed–Solomon over GF(2^8): the classic systematic Vandermonde construction of the
//! `reed-solomon-erasure` crate (`V · V_top⁻¹`, field polynomial 0x11d), computed by the SIMD
//! kernels of `rusty_erasure`. Tests check byte identity with `reed-solomon-erasure`, so the
//! parity bytes on providers are defined by a public, independent reference.

use rusty_erasure::{Coder, DecodePlan, coder, compat};

use crate::error::{CodecError, Result};

/// Encoder and decoder for one `(k, m)`; caches the last decode plan, because consecutive
/// stripes of a degraded read share one loss pattern.
pub(crate) struct Erasure {
    k: usize,
    m: usize,
    coder: Option<Coder>,
    plan: Option<(Vec<bool>, Vec<usize>, DecodePlan)>,
}

impl Erasure {
    pub(crate) fn new(k: usize, m: usize) -> Result<Self> {
        let coder = if m == 0 {
            None
        } else {
            let matrix = compat::reed_solomon_erasure_matrix(k, m)
                .map_err(|e| CodecError::InvalidParams(format!("Reed–Solomon matrix: {e}")))?;
            Some(
                coder(matrix)
                    .map_err(|e| CodecError::InvalidParams(format!("Reed–Solomon coder: {e}")))?,
            )
        };
        Ok(Erasure {
            k,
            m,
            coder,
            plan: None,
        })
    }

    /// Computes the `m` parity chunks of `k` equal-length data chunks.
    pub(crate) fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<()> {
        match &self.coder {
            None => Ok(()),
            Some(c) => c
                .encode(data, parity)
                .map_err(|e| CodecError::InvalidInput(format!("erasure encode: {e}"))),
        }
    }

    /// Rebuilds the chunks named in `rebuild` from any `k` of `shards`.
    pub(crate) fn recover(
        &mut self,
        shards: &[Option<&[u8]>],
        rebuild: &[usize],
        out: &mut [&mut [u8]],
    ) -> Result<()> {
        let Some(coder) = &self.coder else {
            return Err(CodecError::InvalidInput(
                "no parity (m = 0): nothing to recover from".into(),
            ));
        };
        let present: Vec<bool> = shards.iter().map(Option::is_some).collect();
        let reuse = matches!(&self.plan, Some((p, r, _)) if *p == present && r == rebuild);
        if !reuse {
            let plan = coder.decode_plan(&present, rebuild).map_err(|e| {
                CodecError::InvalidInput(format!(
                    "erasure decode plan (k={}, m={}): {e}",
                    self.k, self.m
                ))
            })?;
            self.plan = Some((present, rebuild.to_vec(), plan));
        }
        match &self.plan {
            Some((_, _, plan)) => coder
                .recover_with(plan, shards, out)
                .map_err(|e| CodecError::InvalidInput(format!("erasure recover: {e}"))),
            None => Err(CodecError::InvalidInput("no decode plan".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The parity bytes must equal those of `reed-solomon-erasure` (the independent reference
    //! that defines the on-provider format), and recovery must work from any `k` chunks.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::Erasure;

    fn bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn parity_is_byte_identical_to_reed_solomon_erasure() {
        for (k, m) in [
            (1, 1),
            (2, 1),
            (4, 2),
            (6, 3),
            (8, 4),
            (10, 10),
            (16, 4),
            (17, 3),
        ] {
            for len in [1, 63, 64, 1000, 4096 + 7] {
                let data: Vec<Vec<u8>> = (0..k).map(|i| bytes((k * 100 + i) as u64, len)).collect();
                let mut reference: Vec<Vec<u8>> = data.clone();
                reference.extend((0..m).map(|_| vec![0u8; len]));
                reed_solomon_erasure::galois_8::ReedSolomon::new(k, m)
                    .unwrap()
                    .encode(&mut reference)
                    .unwrap();
                let ours = Erasure::new(k, m).unwrap();
                let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
                let mut parity = vec![vec![0u8; len]; m];
                let mut outs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
                ours.encode(&refs, &mut outs).unwrap();
                assert_eq!(parity, reference[k..], "k={k} m={m} len={len}");
            }
        }
    }

    #[test]
    fn recovers_every_data_chunk_from_parity() {
        let (k, m, len) = (4, 2, 777);
        let data: Vec<Vec<u8>> = (0..k).map(|i| bytes(i as u64 + 1, len)).collect();
        let mut parity = vec![vec![0u8; len]; m];
        let mut er = Erasure::new(k, m).unwrap();
        {
            let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
            let mut outs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
            er.encode(&refs, &mut outs).unwrap();
        }
        for a in 0..k {
            for b in a + 1..k {
                let mut shards: Vec<Option<&[u8]>> =
                    data.iter().map(|d| Some(d.as_slice())).collect();
                shards.extend(parity.iter().map(|p| Some(p.as_slice())));
                shards[a] = None;
                shards[b] = None;
                let mut out = vec![vec![0u8; len]; 2];
                let mut outs: Vec<&mut [u8]> = out.iter_mut().map(Vec::as_mut_slice).collect();
                er.recover(&shards, &[a, b], &mut outs).unwrap();
                assert_eq!(out[0], data[a]);
                assert_eq!(out[1], data[b]);
            }
        }
    }
}

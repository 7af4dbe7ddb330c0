//! Asking every advisory source about every pin. The documents come from the caller
//! (`fetch`), so this crate still contacts nothing itself.

use std::collections::BTreeSet;

use bitpoll_error_class::{Classify, ErrorClass};

use crate::{parse_release_json, Advisory, Findings, OsvDb, Pin, Report, SourceKind, Status};

/// Fetches the index's JSON API document of one release: `None` when the index has none.
pub type ReleaseJson<'a, E> = dyn Fn(&Pin) -> Result<Option<Vec<u8>>, E> + Sync + 'a;

/// A source that could not be asked about a pin.
#[derive(Debug, thiserror::Error)]
#[error("asking the index about {} {}", pin.name, pin.version)]
pub struct LookupError<E: std::error::Error + 'static> {
    pub pin: Pin,
    /// Boxed: an index client's error is large, and this one travels through every result.
    #[source]
    pub source: Box<E>,
}

impl<E: std::error::Error + Classify + 'static> Classify for LookupError<E> {
    fn class(&self) -> ErrorClass {
        self.source.class()
    }
}

/// Where advisories come from for one run: each source is asked about each pin.
pub struct Sources<'a, E> {
    /// `None`: the index is not asked (`--no-index`).
    pub index: Option<&'a ReleaseJson<'a, E>>,
    pub osv: Option<OsvDb>,
}

impl<E: std::error::Error + Send + 'static> Sources<'_, E> {
    /// What every source says about `pin`.
    pub fn status(&self, pin: &Pin) -> Result<Status, LookupError<E>> {
        let mut findings = Findings::default();
        match self.index {
            None => findings.unanswered("the index was not asked (--no-index)".into()),
            Some(fetch) => match fetch(pin).map_err(|source| LookupError {
                pin: pin.clone(),
                source: Box::new(source),
            })? {
                None => findings.unanswered("the index has no JSON API document for it".into()),
                Some(body) => match parse_release_json(&body) {
                    Ok(Some(list)) => findings.answered(SourceKind::IndexJson, list),
                    Ok(None) => findings.unanswered("the index serves no advisory data".into()),
                    Err(e) => findings.unanswered(format!("the index's JSON API: {e}")),
                },
            },
        }
        if let Some(osv) = &self.osv {
            findings.answered(SourceKind::Osv, osv.advisories(&pin.name, &pin.version));
        }
        Ok(findings.into_status())
    }

    /// The advisories affecting `pin`, or `None` when no source answered.
    pub fn advisories(&self, pin: &Pin) -> Result<Option<Vec<Advisory>>, LookupError<E>> {
        Ok(match self.status(pin)? {
            Status::Checked { advisories, .. } => Some(advisories),
            Status::NotChecked { .. } => None,
        })
    }

    /// Asks every source about every pin, a few pins at a time.
    pub fn audit(&self, pins: BTreeSet<Pin>) -> Result<Report, LookupError<E>> {
        let pins: Vec<Pin> = pins.into_iter().collect();
        let chunk = pins.len().div_ceil(8).max(1);
        type Part<E> = Result<Vec<(Pin, Status)>, LookupError<E>>;
        let results: Vec<Part<E>> = std::thread::scope(|scope| {
            let handles: Vec<_> = pins
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|pin| Ok((pin.clone(), self.status(pin)?)))
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("audit threads do not panic"))
                .collect()
        });
        let mut report = Report {
            pins: Default::default(),
        };
        for part in results {
            report.pins.extend(part?);
        }
        Ok(report)
    }
}

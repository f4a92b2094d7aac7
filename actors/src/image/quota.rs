//! `ImageUsage`: one project's image slots and stored bytes, taken and freed by events on one stream, so a
//! quota check and its reservation are a single optimistic-concurrency append: two concurrent requests can
//! never both take the last slot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_proto::image as pb;
use strata_proto::ImageEvent as E;

use crate::aggregate::{Aggregate, DomainError};

/// The aggregate id of a project's image usage (stream `quota-image.<project>`).
pub fn usage_id(project_id: &str) -> String {
    format!("image.{project_id}")
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageUsage {
    /// Image id -> bytes stored for it (0 until its data is stored).
    pub images: BTreeMap<String, u64>,
}

impl ImageUsage {
    pub fn bytes(&self) -> u64 {
        self.images.values().sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageUsageCommand {
    /// Take a slot for a new image, if fewer than `limit` are taken.
    TakeSlot { image_id: String, limit: u64 },
    /// Record `bytes` stored for an image, if the total stays within `limit`.
    TakeBytes {
        image_id: String,
        bytes: u64,
        limit: u64,
    },
    /// Give back an image's slot and bytes (deleted, or never created).
    Free { image_id: String },
}

impl Aggregate for ImageUsage {
    type Command = ImageUsageCommand;
    type Event = E;
    const KIND: &'static str = "quota";

    fn decide(&self, cmd: &ImageUsageCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            ImageUsageCommand::TakeSlot { image_id, limit } => {
                if self.images.contains_key(image_id) {
                    return Ok(vec![]);
                }
                if self.images.len() as u64 >= *limit {
                    return Err(DomainError::OverQuota(format!(
                        "Maximum number of images exceeded ({} of {limit}).",
                        self.images.len()
                    )));
                }
                Ok(vec![E::ImageSlotTaken(pb::ImageSlotTaken {
                    image_id: image_id.clone(),
                })])
            }
            ImageUsageCommand::TakeBytes {
                image_id,
                bytes,
                limit,
            } => {
                let Some(current) = self.images.get(image_id) else {
                    return Err(DomainError::NotFound {
                        kind: "image slot",
                        id: image_id.clone(),
                    });
                };
                let total = self.bytes() - current + bytes;
                if total > *limit {
                    return Err(DomainError::OverQuota(format!(
                        "Image storage quota exceeded: {total} bytes would exceed the limit of {limit}."
                    )));
                }
                if current == bytes {
                    return Ok(vec![]);
                }
                Ok(vec![E::ImageBytesTaken(pb::ImageBytesTaken {
                    image_id: image_id.clone(),
                    bytes: *bytes,
                })])
            }
            ImageUsageCommand::Free { image_id } => {
                if !self.images.contains_key(image_id) {
                    return Ok(vec![]);
                }
                Ok(vec![E::ImageSlotFreed(pb::ImageSlotFreed {
                    image_id: image_id.clone(),
                })])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::ImageSlotTaken(e) => {
                self.images.insert(e.image_id.clone(), 0);
            }
            E::ImageBytesTaken(e) => {
                self.images.insert(e.image_id.clone(), e.bytes);
            }
            E::ImageSlotFreed(e) => {
                self.images.remove(&e.image_id);
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::codec::DomainEvent;

    fn run(state: ImageUsage, cmd: ImageUsageCommand) -> Result<ImageUsage, DomainError> {
        let events = state.decide(&cmd)?;
        for e in &events {
            assert_eq!(&E::decode(e.event_type(), &e.encode()).unwrap(), e);
        }
        Ok(events.iter().fold(state, |s, e| s.apply(e)))
    }

    fn slot(id: &str, limit: u64) -> ImageUsageCommand {
        ImageUsageCommand::TakeSlot {
            image_id: id.into(),
            limit,
        }
    }

    #[test]
    fn slots_are_counted_against_the_limit() {
        let s = run(ImageUsage::default(), slot("a", 2)).unwrap();
        let s = run(s, slot("a", 2)).unwrap();
        assert_eq!(
            s.images.len(),
            1,
            "taking the same slot twice is idempotent"
        );
        let s = run(s, slot("b", 2)).unwrap();
        assert!(matches!(
            run(s.clone(), slot("c", 2)),
            Err(DomainError::OverQuota(_))
        ));
        let s = run(
            s,
            ImageUsageCommand::Free {
                image_id: "a".into(),
            },
        )
        .unwrap();
        let s = run(s, slot("c", 2)).unwrap();
        assert_eq!(s.images.keys().cloned().collect::<Vec<_>>(), vec!["b", "c"]);
    }

    #[test]
    fn bytes_are_counted_against_the_limit() {
        let s = run(ImageUsage::default(), slot("a", 10)).unwrap();
        let s = run(s, slot("b", 10)).unwrap();
        let take = |id: &str, bytes| ImageUsageCommand::TakeBytes {
            image_id: id.into(),
            bytes,
            limit: 1000,
        };
        let s = run(s, take("a", 600)).unwrap();
        assert!(matches!(
            run(s.clone(), take("b", 500)),
            Err(DomainError::OverQuota(_))
        ));
        let s = run(s, take("b", 400)).unwrap();
        assert_eq!(s.bytes(), 1000);
        assert!(matches!(
            run(s.clone(), take("zzz", 1)),
            Err(DomainError::NotFound { .. })
        ));
        let s = run(
            s,
            ImageUsageCommand::Free {
                image_id: "a".into(),
            },
        )
        .unwrap();
        assert_eq!(s.bytes(), 400);
        assert_eq!(
            run(
                s.clone(),
                ImageUsageCommand::Free {
                    image_id: "a".into()
                }
            )
            .unwrap(),
            s
        );
    }
}

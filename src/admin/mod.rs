//! The admin listener (`admin.listen`, off by default, loopback only): the read-only
//! incident pages, served from the workspaces on a side thread, and the silences API
//! (Alertmanager v2 shape; writes need the admin token).

pub mod html;
pub mod incidents;
pub mod markdown;
pub mod pages;
pub mod router;
pub mod server;

use std::path::PathBuf;

use incidents::IncidentStore;
use pages::{Assets, IncidentPages};
use router::Router;

use crate::silence::api::SilenceApi;

/// Every section the admin listener serves, reading incidents under `workspace_root`.
pub fn router(workspace_root: PathBuf, silences: SilenceApi) -> Router {
    Router::new("/incidents")
        .mount(
            "/incidents",
            IncidentPages::new(IncidentStore::new(workspace_root)),
        )
        .mount("/assets", Assets)
        .mount("/api/v2/silences", silences.clone())
        .mount("/api/v2/silence", silences.clone())
        .mount("/api/v2/status", silences)
}

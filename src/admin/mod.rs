//! The admin listener (`admin.listen`, off by default, loopback only): the read-only
//! incident pages, served from the workspaces on a side thread. Its router takes more
//! sections by path prefix.

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

/// Every section the admin listener serves, reading incidents under `workspace_root`.
pub fn router(workspace_root: PathBuf) -> Router {
    Router::new("/incidents")
        .mount(
            "/incidents",
            IncidentPages::new(IncidentStore::new(workspace_root)),
        )
        .mount("/assets", Assets)
}

//! Workspace files: what `create` writes, atomic replacement, and errors that name the file.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nightcrier::agent::permissions::{ClusterPermissions, PermissionCheck};
use nightcrier::agent::workspace::{new_incident_id, AgentResult, IncidentRecord, Workspace};
use nightcrier::events::FaultEvent;

fn record(id: &str) -> IncidentRecord {
    let fault = FaultEvent::from_fault_data(
        r#"{"faultId":"f-9","faultType":"OOMKilled","severity":"error",
            "resource":{"kind":"Pod","name":"db-0","namespace":"data"}}"#,
    )
    .unwrap();
    IncidentRecord::new(
        id.to_string(),
        "eu-1".into(),
        None,
        BTreeMap::from([("region".to_string(), "eu".to_string())]),
        fault,
        UNIX_EPOCH + Duration::from_secs(1_795_494_900),
    )
}

fn permissions() -> ClusterPermissions {
    let checks = vec![PermissionCheck {
        verb: "get".into(),
        resource: "pods".into(),
        allowed: true,
        error: None,
    }];
    ClusterPermissions::from_checks(
        "eu-1",
        "2026-11-24T04:35:00Z".into(),
        "/k".into(),
        true,
        checks,
        vec![],
    )
}

#[test]
fn create_writes_incident_permissions_and_output_dir() {
    let dir = tempfile::tempdir().unwrap();
    let id = new_incident_id("eu-1", SystemTime::now(), 1);
    let record = record(&id);
    let workspace =
        Workspace::create(&dir.path().join("incidents"), &record, Some(&permissions())).unwrap();

    assert!(workspace.dir.is_absolute());
    assert_eq!(
        workspace.dir.file_name().unwrap().to_str(),
        Some(id.as_str())
    );
    assert!(workspace.output_dir().is_dir());
    assert_eq!(
        workspace.report_path(),
        workspace.dir.join("output/investigation.md")
    );
    assert!(!workspace.report_present());

    let back = workspace.read_incident().unwrap();
    assert_eq!(back, record);
    assert_eq!(back.status, "queued");
    assert_eq!(back.received_at, "2026-11-24T04:35:00Z");
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(workspace.incident_path()).unwrap()).unwrap();
    assert_eq!(json["fault"]["faultType"], "OOMKilled");
    assert_eq!(json["labels"]["region"], "eu");

    let stored: ClusterPermissions =
        serde_json::from_str(&fs::read_to_string(workspace.permissions_path()).unwrap()).unwrap();
    assert_eq!(stored, permissions());
}

#[test]
fn workspace_without_preflight_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let workspace = Workspace::create(dir.path(), &record("a-1"), None).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(workspace.permissions_path()).unwrap()).unwrap();
    assert_eq!(json["preflight"], "not_run");
    assert_eq!(json["cluster"], "eu-1");
}

#[test]
fn an_existing_incident_directory_is_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    Workspace::create(dir.path(), &record("same"), None).unwrap();
    let err = Workspace::create(dir.path(), &record("same"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(err.to_string().contains("same"), "{err}");
}

#[test]
fn errors_name_the_path_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    fs::write(&blocker, "x").unwrap();
    let root = blocker.join("incidents");
    let err = Workspace::create(&root, &record("x-1"), None).unwrap_err();
    assert!(
        err.to_string().contains(&root.display().to_string()),
        "{err}"
    );
}

#[test]
fn updates_replace_files_atomically_and_leave_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut record = record("u-1");
    let workspace = Workspace::create(dir.path(), &record, None).unwrap();
    for status in ["running", "investigated"] {
        record.status = status.into();
        workspace.update_incident(&record).unwrap();
        assert_eq!(workspace.read_incident().unwrap().status, status);
    }
    let result = AgentResult {
        incident_id: "u-1".into(),
        cluster: "eu-1".into(),
        status: "investigated".into(),
        exit_code: Some(0),
        signal: None,
        started_at: "2026-11-24T04:35:00Z".into(),
        finished_at: "2026-11-24T04:36:00Z".into(),
        duration_seconds: 60.0,
        failure_reason: None,
        report_present: true,
    };
    workspace.write_result(&result).unwrap();
    let back: AgentResult =
        serde_json::from_str(&fs::read_to_string(workspace.result_path()).unwrap()).unwrap();
    assert_eq!(back, result);
    let mut names: Vec<String> = fs::read_dir(&workspace.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "incident.json",
            "incident_cluster_permissions.json",
            "output",
            "result.json"
        ]
    );
}

#[test]
fn a_symlinked_report_does_not_count() {
    let dir = tempfile::tempdir().unwrap();
    let workspace = Workspace::create(dir.path(), &record("s-1"), None).unwrap();
    let outside = dir.path().join("outside.md");
    fs::write(&outside, "# not the agent's").unwrap();
    std::os::unix::fs::symlink(&outside, workspace.report_path()).unwrap();
    assert!(!workspace.report_present());
    fs::remove_file(workspace.report_path()).unwrap();
    fs::write(workspace.report_path(), "").unwrap();
    assert!(
        !workspace.report_present(),
        "an empty report does not count"
    );
    fs::write(workspace.report_path(), "## Summary\n").unwrap();
    assert!(workspace.report_present());
}

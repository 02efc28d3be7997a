//! The library's download against the local hub stand-in: the progress it reports is what the
//! web page draws, so every transfer must start, count its bytes up to the file's size and
//! finish, and a second run must transfer nothing.

mod hub_standin;

use hub_standin::{repos, start_hub, Behaviour, COMMIT};
use triposg_weights::{download, Options, Progress};

#[test]
fn progress_follows_every_file_from_start_to_its_full_size() {
    let hub = start_hub(Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        endpoint: Some(hub.endpoint.clone()),
        ..Default::default()
    };
    let mut events = Vec::new();
    download(dir.path(), &opts, &mut |e| events.push(e)).unwrap();

    let hub_files = repos();
    for (repo, folder) in [
        ("VAST-AI/TripoSG", "TripoSG"),
        ("briaai/RMBG-1.4", "RMBG-1.4"),
    ] {
        let needed: Vec<(&String, &Vec<u8>)> = hub_files[repo]
            .iter()
            .filter(|(name, _)| dir.path().join(folder).join(name).exists())
            .collect();
        let total: u64 = needed.iter().map(|(_, b)| b.len() as u64).sum();
        assert!(
            events.contains(&Progress::Repo {
                repo: repo.into(),
                commit: COMMIT.into(),
                files: needed.len(),
                bytes: total,
            }),
            "{events:?}"
        );
        for (name, bytes) in needed {
            let size = bytes.len() as u64;
            let of_file: Vec<&Progress> = events
                .iter()
                .filter(|e| match e {
                    Progress::Started { file, .. }
                    | Progress::Bytes { file, .. }
                    | Progress::Finished { file, .. } => file == name,
                    _ => false,
                })
                .collect();
            assert!(
                matches!(of_file.first(), Some(Progress::Started { bytes: Some(b), .. }) if *b == size),
                "{name}: {of_file:?}"
            );
            assert!(
                matches!(of_file.last(), Some(Progress::Finished { bytes, .. }) if *bytes == size),
                "{name}: {of_file:?}"
            );
            let counted: Vec<u64> = of_file
                .iter()
                .filter_map(|e| match e {
                    Progress::Bytes { done, total, .. } if *total == size => Some(*done),
                    _ => None,
                })
                .collect();
            assert_eq!(counted.last(), Some(&size), "{name}: {of_file:?}");
            assert!(
                counted.windows(2).all(|w| w[0] <= w[1]),
                "{name}: {counted:?}"
            );
        }
    }

    // Everything is in place: the second run only confirms it.
    let mut again = Vec::new();
    download(dir.path(), &opts, &mut |e| again.push(e)).unwrap();
    assert!(
        again
            .iter()
            .all(|e| matches!(e, Progress::Repo { .. } | Progress::Present { .. })),
        "{again:?}"
    );
    assert!(triposg_weights::problems(dir.path()).is_empty());
}

//! `enrichd batch`: a customer list through the service, resumable.
use std::process::ExitCode;

use super::args::BatchArgs;
use super::output::print_violations;
use super::remote::{Target, as_cli};
use super::{load_config, quiet_logs};
use crate::config::Config;
use crate::proto::v1 as pb;
use crate::startup;

pub(crate) async fn batch(args: BatchArgs) -> anyhow::Result<ExitCode> {
    use futures::FutureExt;
    let mut config = load_config(&args.config)?;
    config.batch.max_in_flight = args.concurrency.max(1);
    quiet_logs(&config);
    let mut template = pb::EnrichRequest {
        hints: Some(pb::Hints {
            default_region: args.region.clone().unwrap_or_default(),
            ..Default::default()
        }),
        ..Default::default()
    };
    args.claim.fill(&mut template);
    if args.audience.is_some()
        && !config
            .purposes
            .get(&template.purpose)
            .is_some_and(|p| p.audience)
    {
        eprintln!(
            "error: --audience: purpose {:?} does not declare audience analytics \
             (purposes.{}.audience = true); nothing was run",
            template.purpose, template.purpose
        );
        return Ok(ExitCode::from(2));
    }
    let outputs = [
        ("--output", Some(&args.output)),
        ("--csv", args.csv.as_ref()),
        ("--audience", args.audience.as_ref()),
    ];
    for (flag, path) in outputs {
        if let Some(path) = path
            && let Err(why) = writable(path)
        {
            eprintln!(
                "error: {flag}: cannot write {}: {why}; nothing was run",
                path.display()
            );
            return Ok(ExitCode::from(2));
        }
    }
    let columns = crate::batch::Columns {
        email: args.email_column.clone(),
        phone: args.phone_column.clone(),
    };
    // Counted once (read again, a row at a time, as rows are sent).
    let rows_in =
        crate::batch::count_rows(&args.input, crate::batch::Format::of(&args.input), &columns)?;
    let run = crate::batch::Run {
        input: args.input.clone(),
        output: args.output.clone(),
        columns,
        template,
        window: args.concurrency.max(1),
        rows_in,
    };
    if args.remote.remote.is_none() && !args.sandbox {
        slow_budget_note(&config, &args, rows_in)?;
    }
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let target = Target::open(&args.remote, &config, args.sandbox).await?;
    let mut client = target.client.clone();
    let executed = run
        .execute(
            move |requests| {
                async move {
                    let answers = client.enrich_stream(as_cli(requests)).await?.into_inner();
                    Ok(Box::pin(answers) as crate::batch::Answers)
                }
                .boxed_local()
            },
            interrupt,
        )
        .await;
    let summary = match executed {
        Ok(summary) => summary,
        Err(e) => match e.downcast::<crate::batch::RunRefused>() {
            Ok(refused) => {
                eprintln!("error: {refused}");
                print_violations(&refused.fields, &refused.preconditions);
                return Ok(ExitCode::from(2));
            }
            Err(e) => return Err(e),
        },
    };
    eprint!("{}", summary.render());
    if let Some(csv) = &args.csv {
        let mut dialect =
            crate::batch::list_dialect(&args.input, crate::batch::Format::of(&args.input))?;
        if let Some(delimiter) = args.csv_delimiter {
            dialect.delimiter = delimiter;
        }
        crate::batch::write_table(&args.output, csv, dialect)?;
        eprintln!("summary columns written to {}", csv.display());
    }
    if let Some(path) = &args.audience {
        audience_report(&config, &args.output, path)?;
        eprintln!("audience report written to {}", path.display());
    }
    Ok(if summary.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether a file can be written at `path`: its directory exists and takes
/// a new file (tried with an empty one of a name of its own, removed at
/// once), and it is not a directory itself. Found out at the end, a long
/// run's `--csv` or `--audience` was lost (the answers were not: the same
/// command again writes them from the output).
fn writable(path: &std::path::Path) -> Result<(), String> {
    if path.is_dir() {
        return Err("it is a directory".into());
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    let probe = dir.join(format!(
        ".enrichd-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The audience report of a run's answers (`output`), written to `path`.
fn audience_report(
    config: &Config,
    output: &std::path::Path,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    use std::io::BufRead;
    let scoring = crate::scoring::ScoringData::load(&config.scoring)?;
    let file = std::fs::File::open(output)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", output.display()))?;
    let (mut rows, mut outcomes, mut people) = (0, std::collections::BTreeMap::new(), Vec::new());
    for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
        let Ok(line) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        rows += 1;
        let outcome = crate::batch::outcome_of(&line);
        let answered = matches!(outcome.as_str(), "enriched" | "not_found" | "incomplete");
        *outcomes
            .entry(crate::audience::outcome_key(outcome))
            .or_insert(0_u64) += 1;
        if answered
            && let Ok(answer) = serde_json::from_value::<pb::EnrichResponse>(line["answer"].clone())
        {
            people.push(crate::audience::Features::of(&answer, |id| {
                scoring.is_special(id)
            }));
        }
    }
    let inputs = crate::audience::Inputs {
        rows,
        outcomes: &outcomes,
        people: &people,
        taxonomy: &scoring.nodes,
        special: &|id: &str| scoring.is_special(id),
        now_ms: crate::clock::SharedClock::system().utc().timestamp_millis(),
        // One report a run, for the operator who holds every answer.
        noise_seed: rand::random(),
    };
    let (report, _) = crate::audience::build(&inputs, &config.audience);
    crate::privacy::write_private(path, &serde_json::to_string_pretty(&report)?, false)
        .map_err(|e| anyhow::anyhow!("--audience: cannot write {}: {e}", path.display()))
}

/// Real sources allow a few requests a minute, not a second: before a run
/// on them, say how long its slowest budget makes it, at worst, so a
/// five-row list that takes minutes is no surprise.
pub(crate) fn slow_budget_note(config: &Config, args: &BatchArgs, rows: u64) -> anyhow::Result<()> {
    let catalog = startup::configured_catalog(config)?;
    let purpose = args.claim.purpose.as_str();
    let Some(slowest) = catalog
        .sources()
        .iter()
        .filter(|s| s.enabled() && s.purposes.iter().any(|p| p == purpose))
        .min_by(|a, b| {
            a.limits
                .rate_limit
                .per_second
                .total_cmp(&b.limits.rate_limit.per_second)
        })
    else {
        return Ok(());
    };
    let rate = slowest.limits.rate_limit;
    let beyond = rows.saturating_sub(u64::from(rate.burst)) as f64;
    let seconds = beyond / rate.per_second.max(f64::MIN_POSITIVE);
    if seconds >= 60.0 {
        eprintln!(
            "note: source {:?} allows {} requests/s (burst {}): {rows} rows may take up to {} \
             on the configured catalog (fewer when rows skip it or hit the cache); \
             --sandbox runs on local sites",
            slowest.id,
            rate.per_second,
            rate.burst,
            humantime::format_duration(std::time::Duration::from_secs(seconds.ceil() as u64))
        );
    }
    Ok(())
}

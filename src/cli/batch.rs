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
    let run = crate::batch::Run {
        input: args.input.clone(),
        output: args.output.clone(),
        columns: crate::batch::Columns {
            email: args.email_column.clone(),
            phone: args.phone_column.clone(),
        },
        template,
        window: args.concurrency.max(1),
    };
    if args.remote.remote.is_none() && !args.sandbox {
        slow_budget_note(&config, &args)?;
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
        crate::batch::write_table(&args.output, csv)?;
        eprintln!("summary columns written to {}", csv.display());
    }
    Ok(if summary.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// Real sources allow a few requests a minute, not a second: before a run
/// on them, say how long its slowest budget makes it, at worst, so a
/// five-row list that takes minutes is no surprise.
pub(crate) fn slow_budget_note(config: &Config, args: &BatchArgs) -> anyhow::Result<()> {
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
    let rows = crate::batch::read_rows(
        &args.input,
        crate::batch::Format::of(&args.input),
        &crate::batch::Columns {
            email: args.email_column.clone(),
            phone: args.phone_column.clone(),
        },
    )
    .map(|r| r.len())
    .unwrap_or(0);
    let rate = slowest.limits.rate_limit;
    let beyond = rows.saturating_sub(rate.burst as usize) as f64;
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

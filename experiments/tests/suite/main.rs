//! All integration tests of the experiments crate, linked into one test binary
//! (one link of candle instead of one per file: faster CI builds, a tenth of the disk).

mod analysis_report;
mod armorm;
mod common;
mod config_parsing;
mod data_loaders;
mod data_split_filter;
mod dry_run;
mod dtype_device;
mod fuzz_parsers;
mod gemma_reference;
mod generation_cache;
mod gradients;
mod hf_reference;
mod hf_save;
mod levers;
mod logprobs_scoring;
mod pipeline_config;
mod pipeline_experiment;
mod pipeline_jobs;
mod pipeline_paper_world;
mod pipeline_run;
mod reward_load;
mod reward_model;
mod sample_generation;
mod stages;
mod text_templates;
mod text_tokenizer;
mod toy_configs;
mod toy_world;
mod training;
mod weights_io;

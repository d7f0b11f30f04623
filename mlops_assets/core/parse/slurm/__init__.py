"""What SLURM's client commands print, by object: `units` (sizes, durations, TRES, GRES),
`states` (node and job states, drain reasons), `nodes` (sinfo, scontrol node/partition/config)
and `jobs` (squeue, sacct, sbatch), on the shared readers of `text` (tables, JSON, nulls)."""

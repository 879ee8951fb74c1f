"""The search: TOML space -> points -> Ray Tune trials scheduled by ASHA, picked by Optuna."""

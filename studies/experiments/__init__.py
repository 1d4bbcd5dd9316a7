"""The built-in experiments (`resnas experiment run NAME`): installed as nas_res.experiment_files."""

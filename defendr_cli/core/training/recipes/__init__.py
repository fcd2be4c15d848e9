"""Training recipes: what is trained and with which batch loss, one module per method.

base.py holds the interface (Recipe, RecipeSpec, TrainContext, StepResult); registry.py the table
of methods (get_recipe, recipe_names, register_recipe, train_options, build_recipe); each other
module declares one method: its MethodOptions dataclass, its Recipe class and its SPEC.
"""

"""``resnetlab recipes [NAME]``: the shipped recipes, or every value one of them sets."""

from __future__ import annotations

import argparse
import textwrap


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recipes", help="list the training recipes, or every value one of them sets",
                       description="Without NAME: each recipe and what it is. With NAME: every training setting the "
                                   "recipe gives MODEL, '*' marking those the recipe sets (the others are the "
                                   "TrainConfig defaults); flags, --config and keywords change them.")
    p.add_argument("name", nargs="?", metavar="NAME", help="a recipe (resnetlab recipes lists them)")
    p.add_argument("--model", default=None, help="the model whose values to show (a recipe may set some per model "
                                                 "family or per model; default: the recipe's own, else resnet20)")
    p.set_defaults(func=run_recipes)


def run_recipes(args: argparse.Namespace) -> int:
    from resnetlab.training.config import list_recipes, recipe_description, recipe_settings

    if args.name is None:
        names = list_recipes()
        width = max(map(len, names)) + 2
        for name in names:
            print(f"{name:<{width}}{textwrap.shorten(recipe_description(name), 100, placeholder=' ...')}")
        print("\nresnetlab recipes NAME: every value a recipe sets")
        return 0
    settings = recipe_settings(args.name, args.model)
    print(f"recipe {args.name}: {recipe_description(args.name)}\n")
    width = max(map(len, settings)) + 2
    for key, (value, from_recipe) in settings.items():
        print(f"{'*' if from_recipe else ' '} {key:<{width}}{value}")
    return 0

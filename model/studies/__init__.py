"""The studies, side by side: scaling, fewshot, emergence, instruct; what they share is in
common."""

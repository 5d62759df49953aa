"""Classification: the suggested category of a report (a trained jieba + scikit-learn model, or the
catalogue's keywords), the generated training corpus (package data) and training from the city's history."""

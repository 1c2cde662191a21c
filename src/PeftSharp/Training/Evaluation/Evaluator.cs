using PeftSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Training.Evaluation;

/// <summary>Evaluation loops over a dataset. Callers set eval mode and no_grad (the trainer does); each batch runs in its own dispose scope.</summary>
public static class Evaluator
{
    /// <summary>
    /// Mean of the batches' losses weighted by their row counts (transformers' <c>eval_loss</c> convention), and
    /// <c>perplexity</c> = exp(mean loss).
    /// </summary>
    public static EvaluationResult Loss(IBatchDataset data, BatchLoss loss)
    {
        double sum = 0;
        long rows = 0;
        for (var i = 0; i < data.Count; i++)
        {
            using var scope = torch.NewDisposeScope();
            var batch = data.Get(i);
            sum += loss(batch).to_type(ScalarType.Float64).item<double>() * batch.Rows;
            rows += batch.Rows;
        }
        if (rows == 0)
        {
            throw new PeftException("the evaluation dataset has no batches");
        }
        var mean = sum / rows;
        return new EvaluationResult(mean, new Dictionary<string, double> { ["perplexity"] = Math.Exp(mean) });
    }

    /// <summary>
    /// Sequence classification: loss (as <see cref="Loss"/>), <c>accuracy</c> and <c>macro_f1</c> of the arg-max class
    /// against <see cref="Batch.ClassLabels"/>.
    /// </summary>
    public static EvaluationResult Classification(PretrainedModel model, IBatchDataset data)
    {
        var predicted = new List<long>();
        var expected = new List<long>();
        double sum = 0;
        long rows = 0;
        for (var i = 0; i < data.Count; i++)
        {
            using var scope = torch.NewDisposeScope();
            var batch = data.Get(i);
            var labels = batch.ClassLabels ?? throw new PeftException($"evaluation batch {i} has no ClassLabels");
            var logits = model.Forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds).Logits;
            sum += Losses.SequenceClassification(logits, labels).to_type(ScalarType.Float64).item<double>() * batch.Rows;
            rows += batch.Rows;
            predicted.AddRange(logits.argmax(-1).cpu().data<long>().ToArray());
            expected.AddRange(labels.cpu().to_type(ScalarType.Int64).data<long>().ToArray());
        }
        if (rows == 0)
        {
            throw new PeftException("the evaluation dataset has no batches");
        }
        return new EvaluationResult(sum / rows, new Dictionary<string, double>
        {
            ["accuracy"] = ClassificationMetrics.Accuracy(predicted, expected),
            ["macro_f1"] = ClassificationMetrics.MacroF1(predicted, expected),
        });
    }
}

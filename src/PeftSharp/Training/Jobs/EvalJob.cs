using PeftSharp.Data;
using PeftSharp.Generation;
using PeftSharp.Models;
using PeftSharp.Tokenization;
using PeftSharp.Training.Evaluation;
using TorchSharp;

namespace PeftSharp.Training.Jobs;

/// <summary>How <see cref="EvalJob"/> scores a model.</summary>
public sealed record EvalOptions
{
    public FineTuneTask Task { get; init; } = FineTuneTask.Auto;

    public int BatchSize { get; init; } = 16;

    public int MaxLength { get; init; } = 512;

    /// <summary>Evaluate at most this many examples (0: all).</summary>
    public int Limit { get; init; }

    /// <summary>Generate greedy answers and score the final number against the reference (GSM8K-style exact match).</summary>
    public bool ExactMatch { get; init; }

    public int MaxNewTokens { get; init; } = 256;

    /// <summary>
    /// Evaluate rank-nested adapters (DyLoRA) at this rank b instead of their full rank; null keeps each layer's setting.
    /// Applied to every <see cref="Core.IRankTruncatable"/> layer; an error when the model has none or b is out of range.
    /// </summary>
    public int? Rank { get; init; }
}

/// <summary>
/// Scores a loaded model on a data file: loss and perplexity for language modelling and SFT, accuracy and macro-F1
/// for classification, and exact match of the final number for GSM8K-style answers.
/// </summary>
public static class EvalJob
{
    public static EvaluationResult Run(PretrainedModel model, HfTokenizer tokenizer, string dataPath, EvalOptions? options = null)
    {
        var o = options ?? new EvalOptions();
        var data = DataReader.Read(dataPath);
        var examples = o.Limit > 0 ? data.Examples.Take(o.Limit).ToList() : data.Examples;
        var task = o.Task != FineTuneTask.Auto ? o.Task : FineTuneJob.TaskOf(data);
        var device = model.parameters().First().device;
        if (o.Rank is int rank)
        {
            Core.RankTruncation.SetEvaluationRank(model, rank);
        }
        model.eval();
        using var noGrad = torch.no_grad();
        if (o.ExactMatch)
        {
            return ExactMatch(model, tokenizer, examples, o);
        }
        var encoded = task switch
        {
            FineTuneTask.Classification => ClassificationEncoder.Encode(examples, tokenizer, o.MaxLength),
            FineTuneTask.Sft => SftEncoder.Encode(examples, tokenizer, new SftOptions { MaxLength = o.MaxLength }),
            _ => TextLmEncoder.Encode(examples, tokenizer, new TextLmOptions { MaxLength = o.MaxLength }),
        };
        var loader = new DataLoader(encoded.Examples, Collator.For(tokenizer), device, new DataLoaderOptions { BatchSize = o.BatchSize, Shuffle = false });
        return task == FineTuneTask.Classification ? Evaluator.Classification(model, loader) : Evaluator.Loss(loader, Objectives.For(model));
    }

    private static EvaluationResult ExactMatch(PretrainedModel model, HfTokenizer tokenizer, IReadOnlyList<Example> examples, EvalOptions o)
    {
        var generation = new TextGeneration(model, tokenizer);
        var format = PromptFormats.For(tokenizer);
        var predictions = new List<string>();
        var references = new List<string>();
        foreach (var e in examples.OfType<InstructionExample>())
        {
            // The prompt is what precedes the first trained segment, exactly as training saw it.
            var prompt = string.Concat(format.Render(e with { Output = "" }).Segments.TakeWhile(seg => !seg.Train).Select(seg => seg.Text));
            predictions.Add(generation.Generate(prompt, new GenerationOptions { MaxNewTokens = o.MaxNewTokens }).Text);
            references.Add(e.Output);
        }
        if (predictions.Count == 0)
        {
            throw new PeftException("exact match needs question/answer (or instruction/output) examples");
        }
        return new EvaluationResult(null, new Dictionary<string, double> { ["exact_match"] = AnswerMatching.ExactMatchRate(predictions, references) });
    }
}

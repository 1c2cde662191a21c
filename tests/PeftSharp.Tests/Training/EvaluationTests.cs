using PeftSharp.Training;
using PeftSharp.Training.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Training;

public class EvaluationTests
{
    [Fact]
    public void Accuracy_and_macro_f1_match_hand_computation()
    {
        long[] truth = [0, 0, 1, 1, 2, 2];
        long[] predicted = [0, 1, 1, 1, 0, 2];
        Assert.Equal(4.0 / 6, ClassificationMetrics.Accuracy(predicted, truth), 12);
        // F1 per class: 0 → 2·1/(2+1+1) = 0.5; 1 → 2·2/(4+1+0) = 0.8; 2 → 2·1/(2+0+1) = 2/3.
        Assert.Equal((0.5 + 0.8 + 2.0 / 3) / 3, ClassificationMetrics.MacroF1(predicted, truth), 12);
    }

    [Fact]
    public void Macro_f1_averages_over_classes_seen_in_either_list_only()
    {
        // Class 5 never appears: scikit-learn leaves it out. Class 2 is predicted but absent from the truth: F1 0.
        Assert.Equal((2.0 / 3 + 0.0 + 0.0) / 3, ClassificationMetrics.MacroF1([0, 0, 2], [0, 1, 1]), 12);
        Assert.Equal(1.0, ClassificationMetrics.MacroF1([3, 3], [3, 3]));
        Assert.Throws<PeftException>(() => ClassificationMetrics.Accuracy([1], [1, 2]));
    }

    [Theory]
    [InlineData("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "72")]
    [InlineData("The answer is 1,234 apples.", "1234")]
    [InlineData("#### $18.00", "18")]
    [InlineData("We get -3.5, then 7. So 42.", "42")]
    [InlineData("#### -0.50\nextra 99", "-0.5")]
    [InlineData("no number here", null)]
    [InlineData("3 dogs #### none", "3")]
    public void Final_number_is_taken_after_the_marker_or_else_last_in_text(string text, string? expected)
    {
        Assert.Equal(expected, AnswerMatching.FinalNumber(text));
    }

    [Fact]
    public void Exact_match_compares_final_numbers_as_decimals()
    {
        Assert.True(AnswerMatching.ExactMatch("so she has 18.0 eggs", "She sells 16-3-4=9 eggs... #### 18"));
        Assert.False(AnswerMatching.ExactMatch("so 17", "#### 18"));
        Assert.False(AnswerMatching.ExactMatch("no idea", "#### 18"));
        Assert.Equal(0.5, AnswerMatching.ExactMatchRate(["#### 1", "#### 2"], ["1", "3"]));
    }

    [Fact]
    public void Causal_lm_loss_shifts_labels_and_ignores_minus_100()
    {
        using var scope = torch.NewDisposeScope();
        // Vocabulary 2, one row of 3 positions; logits of position t predict label t+1.
        var logits = torch.tensor(new float[] { 0, 0, 2, 0, 0, 1 }).reshape(1, 3, 2);
        var labels = torch.tensor(new long[] { 1, 0, -100 }).reshape(1, 3);
        // Only position 0 → target 0 counts: CE of [0, 0] at class 0 = ln 2.
        Assert.Equal(Math.Log(2), Losses.CausalLm(logits, labels).item<float>(), 6);
        var both = torch.tensor(new long[] { 1, 0, 1 }).reshape(1, 3);
        // Mean over two targets: ln 2 and CE of [2, 0] at class 1 = ln(1 + e²).
        Assert.Equal((Math.Log(2) + Math.Log(1 + Math.Exp(2))) / 2, Losses.CausalLm(logits, both).item<float>(), 6);
        Assert.Throws<PeftException>(() => Losses.CausalLm(logits, torch.zeros(1, 2, ScalarType.Int64)));
    }

    [Fact]
    public void Classification_loss_is_mean_cross_entropy()
    {
        using var scope = torch.NewDisposeScope();
        var logits = torch.tensor(new float[] { 1, 0, 0, 3 }).reshape(2, 2);
        var labels = torch.tensor(new long[] { 0, 0 });
        var expected = (Math.Log(1 + Math.Exp(-1)) + Math.Log(1 + Math.Exp(3))) / 2;
        Assert.Equal(expected, Losses.SequenceClassification(logits, labels).item<float>(), 5);
    }

    [Fact]
    public void Loss_evaluation_weights_batches_by_rows_and_reports_perplexity()
    {
        using var scope = torch.NewDisposeScope();
        var data = new InMemoryBatchDataset([new Batch(torch.zeros(1, 1)), new Batch(torch.zeros(3, 1))]);
        BatchLoss loss = b => torch.tensor(b.Rows == 1 ? 1.0f : 2.0f);
        var result = Evaluator.Loss(data, loss);
        Assert.Equal(1.75, result.Loss!.Value, 12);
        Assert.Equal(Math.Exp(1.75), result.Metrics["perplexity"], 12);
    }
}

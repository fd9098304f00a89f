"""The end-of-chapter quizzes, one module per chapter (``chNN.QUESTIONS``), shown by ``show_quiz("NN")``.

They live here, not in the notebooks, so that the answers are not in plain sight above the quiz.
"""
